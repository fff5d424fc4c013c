// Rapport annuel ACI (coordinators, ARS): the indicators service's printable report of a CPTS for a year.
// A link cannot carry the bearer token, so the page is fetched through the proxy with it and shown here, in
// a shadow root with the report's own style sheet (the console's CSP forbids inline <style>; a constructed
// style sheet is not markup), the console's header and footer hidden when printing.

import { errorText, indicators, request } from '../api.js';
import { h, message, replace } from '../dom.js';

const CPTS_ID = /^[0-9A-Za-z]{9}$/;
const YEAR = /^20[0-9]{2}$/;
/** Nothing of the fetched page runs or loads anything: its style sheets are adopted, not inserted. */
const STRIPPED = 'script, style, link, meta, base, iframe, object, embed, form';

/** The report's CSS, its page-level rules (`:root`, `body`) aimed at the wrapper inside the shadow root. */
function scopedCss(css) {
  return css.replace(/:root/g, ':host').replace(/(^|[\s,{}])body(?=[\s,{.:])/g, '$1.report-body');
}

/** The report's body and style sheet, read from the service's HTML page. */
export function readReport(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const css = [...doc.querySelectorAll('style')].map((s) => s.textContent).join('\n');
  for (const el of doc.body.querySelectorAll(STRIPPED)) el.remove();
  for (const el of doc.body.querySelectorAll('*')) {
    for (const attr of [...el.attributes]) if (/^on/i.test(attr.name)) el.removeAttribute(attr.name);
  }
  return { title: doc.title, css: scopedCss(css), nodes: [...doc.body.childNodes] };
}

export async function render(main, { params }) {
  const cpts = params.get('cpts') || '';
  const year = params.get('annee') || '';
  const notice = h('div', {});
  const sheet = h('div', { class: 'report-sheet', 'data-cpts': cpts, 'data-year': year });
  const path = `/indicators/cpts/${encodeURIComponent(cpts)}/report/${encodeURIComponent(year)}`;

  async function saveHtml(html) {
    const url = URL.createObjectURL(new Blob([html], { type: 'text/html;charset=utf-8' }));
    const link = Object.assign(document.createElement('a'), {
      href: url,
      download: `rapport-aci-${cpts}-${year}.html`,
    });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  const toolbar = h(
    'div',
    { class: 'actions report-toolbar no-print' },
    h('a', { class: 'button secondary', href: '#/tableau-de-bord' }, 'Retour au tableau de bord'),
  );
  main.append(toolbar, notice, sheet);
  if (!CPTS_ID.test(cpts) || !YEAR.test(year)) {
    replace(notice, message('error', 'Rapport introuvable : CPTS ou année invalide.'));
    return;
  }
  replace(sheet, h('p', { class: 'loading', role: 'status' }, 'Préparation du rapport annuel…'));
  let html;
  try {
    html = await indicators(path, { accept: 'text/html' });
  } catch (error) {
    replace(sheet, message('error', errorText(error)));
    return;
  }
  const report = readReport(html);
  document.title = `${report.title} — Console CPTS · SAS`;
  const styles = new CSSStyleSheet();
  styles.replaceSync(report.css);
  sheet.replaceChildren();
  const shadow = sheet.attachShadow({ mode: 'open' });
  shadow.adoptedStyleSheets = [styles];
  shadow.append(h('div', { class: 'report-body' }, report.nodes));
  toolbar.append(
    h(
      'button',
      { type: 'button', class: 'primary', onClick: () => window.print() },
      'Imprimer ou enregistrer en PDF',
    ),
    h('button', { type: 'button', class: 'secondary', onClick: () => saveHtml(html) }, 'Télécharger (HTML)'),
  );
}

/** Whether the indicators service offers the annual report (read from its OpenAPI document). */
export async function reportAvailable() {
  try {
    const doc = await request('/api/indicators/openapi.json', { auth: false });
    return Boolean(doc.paths?.['/indicators/cpts/{cpts_id}/report/{year}']?.get);
  } catch {
    return false;
  }
}
