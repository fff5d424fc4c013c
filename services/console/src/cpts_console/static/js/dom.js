// Tiny DOM helpers: build elements without innerHTML (no injection of service data into markup).

let counter = 0;

/** A unique id for label/field pairs and ARIA references. */
export function uid(prefix = 'id') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * h('button', {class: 'primary', onClick: fn, 'aria-label': '…'}, 'Texte', child, [more])
 * Attributes: `class`, `text`, `dataset` (object), `on<Event>` listeners, booleans set/omitted, others as-is.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function')
      el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: strings become text, arrays are flattened, null/false are skipped. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A labelled field: `<div class="field"><label for>…</label>control<p class="hint"></p></div>`; `container`
 * is what is shown in place of the control when it is wrapped (a combobox). */
export function field(
  label,
  control,
  { hint = null, required = false, className = '', container = null } = {},
) {
  if (!control.id) control.id = uid('f');
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  if (required) control.required = true;
  return h(
    'div',
    { class: `field ${className}`.trim() },
    h(
      'label',
      { for: control.id },
      label,
      required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null,
    ),
    container || control,
    hintEl,
  );
}

/** Replace the children of `el`, skipping null/false (unlike `replaceChildren`, which prints "null"). */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A `<select>` from [[value, label], …] or an object {value: label}. */
export function select(options, attrs = {}) {
  const entries = Array.isArray(options) ? options : Object.entries(options);
  return h(
    'select',
    attrs,
    entries.map(([value, label]) =>
      h('option', { value, selected: String(attrs.value ?? '') === String(value) }, label),
    ),
  );
}

/** A group of checkboxes or radios in a fieldset with its legend. */
export function choices(legend, name, options, { type = 'checkbox', checked = [], inline = true } = {}) {
  const entries = Array.isArray(options) ? options : Object.entries(options);
  return h(
    'fieldset',
    { class: `choices${inline ? ' inline' : ''}` },
    h('legend', {}, legend),
    entries.map(([value, label]) => {
      const id = uid(name);
      return h(
        'div',
        { class: 'choice' },
        h('input', { type, id, name, value, checked: checked.includes(value) }),
        h('label', { for: id }, label),
      );
    }),
  );
}

/** The checked values of a choices() fieldset. */
export function checkedValues(fieldset) {
  return [...fieldset.querySelectorAll('input:checked')].map((i) => i.value);
}

/** A status message area: polite for information, assertive (role=alert) for errors. */
export function message(kind, ...content) {
  return h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

/** Replace the content of `el` with a loading line while `promise` runs. */
export function loading(el, text = 'Chargement…') {
  clear(el).append(h('p', { class: 'loading', role: 'status' }, text));
}
