// Results of a care request: ranked cards with their first free slots (refreshed every few seconds, so a slot
// booked elsewhere disappears), hold with a countdown, booking, "en sus", or closing with an orientation.

import { communeName, communePoints, errorText, registry, snp } from '../api.js';
import { clear, field, h, message, replace, select } from '../dom.js';
import {
  age,
  CARD_GROUPS,
  CLOSE_REASONS,
  countdown,
  dateLong,
  dateTime,
  DAY_GROUPS,
  day,
  fullName,
  km,
  ORIENTATIONS,
  plural,
  professionLabel,
  REASONS,
  SERVICE_TYPES,
  time,
  timeSeconds,
  URGENCIES,
} from '../format.js';
import { hasRole } from '../session.js';

export const POLL_SECONDS = 5;
const PAGE = 10;
const PREFILL = 'cpts.enrol-prefill';

function requestSummary(request, extra) {
  const p = request.patient;
  return [
    `${p.given_name} ${p.family_name.toUpperCase()}`,
    `${age(p.birth_date)} ans`,
    extra.communeName || request.commune_insee,
    REASONS[request.reason_category] || request.reason_category,
    URGENCIES[request.urgency] || request.urgency,
  ].join(' · ');
}

/** Signature of what the cards show, to redraw only when something changed (keeps the keyboard focus). */
const signature = (result) =>
  JSON.stringify([
    result.cards.map((c) => [
      c.idnps,
      c.free_slot_count,
      Object.values(c.slots)
        .flat()
        .map((s) => s.slot_id),
    ]),
    result.en_sus.map((e) => [e.idnps, e.remaining_this_week]),
    result.total_cards,
  ]);

function slotButton(slot, card, onHold) {
  const type = slot.service_type !== 'AMB' ? SERVICE_TYPES[slot.service_type] : null;
  const kind = SERVICE_TYPES[slot.service_type] || slot.service_type;
  const label = `${dateLong(slot.start)} à ${time(slot.start)}, ${kind}, avec ${fullName(card)}`;
  if (!slot.bookable) {
    return h(
      'span',
      { class: 'slot walkin', title: 'Consultation sans rendez-vous' },
      `${time(slot.start)} (libre accès)`,
    );
  }
  return h(
    'button',
    {
      type: 'button',
      class: 'slot',
      dataset: { slotId: slot.slot_id },
      'aria-label': `Bloquer le créneau du ${label}`,
      onClick: () => onHold(slot, card),
    },
    time(slot.start),
    type ? h('span', { class: 'slot-type' }, type) : null,
  );
}

function cardView(card, onHold) {
  const dayKeys = Object.keys(DAY_GROUPS);
  return h(
    'li',
    { class: `card group-${card.group}`, dataset: { idnps: card.idnps } },
    h(
      'div',
      { class: 'card-head' },
      h('span', { class: 'rank', 'aria-hidden': 'true' }, String(card.rank)),
      h('h3', {}, fullName(card)),
      card.is_own_doctor ? h('span', { class: 'badge mt' }, 'Médecin traitant') : null,
      card.sas_participant ? h('span', { class: 'badge sas' }, 'Participant SAS') : null,
      card.accepts_en_sus ? h('span', { class: 'badge neutral' }, 'Accepte en sus') : null,
    ),
    h(
      'p',
      { class: 'card-meta' },
      [
        professionLabel(card),
        communeName(card.commune_insee),
        km(card.distance_km),
        card.free_slot_count
          ? plural(card.free_slot_count, 'créneau libre', 'créneaux libres')
          : 'aucun créneau libre',
      ]
        .filter(Boolean)
        .join(' · '),
    ),
    card.free_slot_count
      ? h(
          'div',
          { class: 'days' },
          dayKeys.map((key) => {
            const slots = card.slots[key] || [];
            return h(
              'div',
              { class: 'day-column' },
              h(
                'h4',
                {},
                DAY_GROUPS[key],
                slots[0] ? h('span', { class: 'day-date' }, ` · ${day(slots[0].start)}`) : null,
              ),
              slots.length
                ? h(
                    'div',
                    { class: 'slot-list' },
                    slots.map((s) => slotButton(s, card, onHold)),
                  )
                : h('p', { class: 'muted' }, '—'),
            );
          }),
        )
      : h('p', { class: 'muted' }, CARD_GROUPS[card.group] || ''),
  );
}

async function siteOf(idnps, siteId) {
  try {
    const professional = await registry(`/professionals/${idnps}`);
    return (professional.sites || []).find((s) => s.site_id === siteId) || professional.sites?.[0] || null;
  } catch {
    return null;
  }
}

/**
 * Show the results of `request` in `container`; returns a function that stops the refresh.
 * `wantedSlot`: a slot id from a booking link, held as soon as it appears in the results.
 */
export function showResults(container, { request, session, extra = {}, wantedSlot = null, onNewRequest }) {
  const state = { limit: PAGE, signature: null, hold: null, done: false, busy: false };
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const updated = h('span', { class: 'updated' });
  const holdPanel = h('section', {
    class: 'panel hold',
    hidden: true,
    'aria-labelledby': 'hold-title',
    tabindex: '-1',
  });
  const closePanel = h('section', {
    class: 'panel close-request',
    hidden: true,
    'aria-labelledby': 'close-title',
  });
  const cards = h('div', { class: 'results', 'aria-live': 'off' });
  const enSus = h('div', { class: 'en-sus' });
  let timer = null;
  let ticker = null;

  replace(
    container,
    h(
      'section',
      { class: 'panel request-summary', 'aria-labelledby': 'summary-title' },
      h(
        'div',
        { class: 'summary-line' },
        h('h2', { id: 'summary-title' }, 'Demande en cours'),
        h('p', {}, requestSummary(request, extra)),
      ),
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', class: 'secondary', onClick: () => showClose() },
          'Aucun créneau : orienter le patient',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary',
            onClick: () => {
              stop();
              onNewRequest();
            },
          },
          'Nouvelle demande',
        ),
      ),
    ),
    status,
    holdPanel,
    closePanel,
    h('div', { class: 'results-head' }, h('h2', {}, 'Professionnels et créneaux'), updated),
    cards,
    enSus,
  );

  function stop() {
    clearInterval(timer);
    clearInterval(ticker);
    timer = null;
  }

  async function refresh() {
    if (state.done || state.busy || document.hidden) return;
    state.busy = true;
    try {
      const result = await snp(`/care-requests/${request.request_id}/candidates`, {
        query: { limit: state.limit },
      });
      await communePoints(result.cards.map((c) => c.commune_insee).filter(Boolean));
      updated.textContent =
        `Mis à jour à ${timeSeconds(new Date())} ` + `(actualisation toutes les ${POLL_SECONDS} s)`;
      const sig = signature(result);
      if (sig !== state.signature && !state.done) {
        state.signature = sig;
        drawCards(result);
        drawEnSus(result);
      }
      if (wantedSlot) {
        const slot = result.cards
          .flatMap((c) =>
            Object.values(c.slots)
              .flat()
              .map((s) => [s, c]),
          )
          .find(([s]) => s.slot_id === wantedSlot);
        wantedSlot = null;
        if (slot) await hold(...slot);
        else
          replace(
            status,
            message(
              'error',
              "Le créneau du lien de réservation n'est plus libre ou hors de la zone : " +
                'choisissez-en un autre.',
            ),
          );
      }
    } catch (error) {
      replace(status, message('error', errorText(error)));
    } finally {
      state.busy = false;
    }
  }

  function drawCards(result) {
    const intro = h(
      'p',
      { class: 'muted' },
      `${plural(result.professionals_with_slots, 'professionnel')} avec des créneaux ` +
        `dans un rayon de ${km(result.radius_km)}, jusqu'au ${dateTime(result.window_end)}. ` +
        `Ordre : ${result.order === 'distance' ? 'distance' : 'neutre (tirage au sort)'} ; ` +
        'médecin traitant, puis participants au SAS avec créneaux, puis les autres.',
    );
    if (!result.cards.length) {
      replace(cards, intro, message('info', 'Aucun professionnel trouvé dans la zone de recherche.'));
      return;
    }
    replace(
      cards,
      intro,
      h(
        'ol',
        { class: 'cards' },
        result.cards.map((c) => cardView(c, hold)),
      ),
      result.total_cards > result.cards.length
        ? h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              onClick: () => {
                state.limit += PAGE;
                state.signature = null;
                refresh();
              },
            },
            `Afficher plus de professionnels (${result.total_cards - result.cards.length} autres)`,
          )
        : null,
    );
  }

  function drawEnSus(result) {
    if (!result.en_sus.length) {
      clear(enSus);
      return;
    }
    replace(
      enSus,
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'ensus-title' },
        h('h2', { id: 'ensus-title' }, 'Aucun créneau libre : effecteurs acceptant un patient en sus'),
        h(
          'ul',
          { class: 'plain-list' },
          result.en_sus.map((e) =>
            h(
              'li',
              { class: 'en-sus-item' },
              h(
                'span',
                {},
                h('strong', {}, fullName(e)),
                ` · ${km(e.distance_km)}`,
                e.remaining_this_week !== null ? ` · encore ${e.remaining_this_week} cette semaine` : '',
              ),
              h(
                'button',
                { type: 'button', class: 'primary small', onClick: () => bookEnSus(e) },
                'Adresser en sus',
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function hold(slot, card) {
    if (state.hold) await release(false);
    replace(status, h('p', { class: 'loading', role: 'status' }, 'Blocage du créneau…'));
    try {
      const held = await snp(`/slots/${slot.slot_id}/hold`, {
        method: 'POST',
        body: { request_id: request.request_id },
      });
      state.hold = { ...held, slot, card };
      clear(status);
      drawHold();
      holdPanel.focus();
    } catch (error) {
      const text =
        error.status === 409
          ? "Ce créneau vient d'être pris ou bloqué par un autre poste : choisissez-en un autre."
          : errorText(error);
      replace(status, message('error', text));
      state.signature = null;
      refresh();
    }
  }

  function drawHold() {
    const { slot, card, expires_at: expiresAt } = state.hold;
    const left = h('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
    const confirm = h(
      'button',
      { type: 'button', class: 'primary', onClick: book },
      'Confirmer le rendez-vous',
    );
    holdPanel.hidden = false;
    replace(
      holdPanel,
      h('h2', { id: 'hold-title' }, 'Créneau bloqué pour ce patient'),
      h(
        'p',
        { class: 'hold-slot' },
        `${dateLong(slot.start)} à ${time(slot.start)} — ${fullName(card)} — ` +
          `${SERVICE_TYPES[slot.service_type] || slot.service_type}` +
          `${slot.distance_km !== null ? ` — ${km(slot.distance_km)}` : ''}`,
      ),
      left,
      h(
        'div',
        { class: 'actions' },
        confirm,
        h(
          'button',
          { type: 'button', class: 'secondary', onClick: () => release(true) },
          'Relâcher le créneau',
        ),
      ),
    );
    const tick = () => {
      const text = countdown(expiresAt);
      if (text) {
        left.textContent = `Bloqué pour vous encore ${text} (jusqu'à ${timeSeconds(expiresAt)}).`;
      } else {
        left.textContent =
          'Le blocage a expiré : le créneau peut avoir été pris. ' +
          'Réservez-le directement ou choisissez-en un autre.';
        left.classList.add('expired');
        clearInterval(ticker);
      }
    };
    clearInterval(ticker);
    tick();
    ticker = setInterval(tick, 1000);
  }

  async function release(redraw) {
    const held = state.hold;
    state.hold = null;
    clearInterval(ticker);
    holdPanel.hidden = true;
    if (!held) return;
    try {
      await snp(`/slots/${held.slot_id}/hold/${held.hold_id}`, { method: 'DELETE' });
    } catch {
      /* expired or already released */
    }
    if (redraw) {
      state.signature = null;
      refresh();
    }
  }

  async function book() {
    const held = state.hold;
    replace(status, h('p', { class: 'loading', role: 'status' }, 'Réservation…'));
    try {
      const appointment = await snp('/appointments', {
        method: 'POST',
        body: { slot_id: held.slot_id, request_id: request.request_id, hold_id: held.hold_id },
      });
      await confirmation(appointment, held.card, held.slot);
    } catch (error) {
      const text =
        error.status === 409
          ? "Le créneau n'a pas pu être réservé (pris entre-temps ou blocage expiré)."
          : errorText(error);
      replace(status, message('error', text));
    }
  }

  async function bookEnSus(effecteur) {
    replace(status, h('p', { class: 'loading', role: 'status' }, 'Adressage en sus…'));
    try {
      const appointment = await snp('/appointments/en-sus', {
        method: 'POST',
        body: { idnps: effecteur.idnps, request_id: request.request_id },
      });
      await confirmation(appointment, effecteur, null);
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  }

  async function confirmation(appointment, professional, slot) {
    state.done = true;
    stop();
    const site = slot ? await siteOf(professional.idnps, slot.site_id) : null;
    const p = request.patient;
    const canEnrol =
      hasRole(session, 'secretary', 'coordinator') &&
      request.mt_idnps === null &&
      request.consent_mt_referral;
    const heading = h('h2', { id: 'done-title', tabindex: '-1' }, 'Rendez-vous confirmé');
    replace(
      container,
      h(
        'section',
        { class: 'panel confirmation', 'aria-labelledby': 'done-title' },
        heading,
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Patient'),
          h('dd', {}, `${p.given_name} ${p.family_name.toUpperCase()}${p.phone ? ` · ${p.phone}` : ''}`),
          h('dt', {}, 'Professionnel'),
          h('dd', {}, fullName(professional)),
          h('dt', {}, 'Quand'),
          h(
            'dd',
            {},
            appointment.start
              ? `${dateLong(appointment.start)} à ${time(appointment.start)}`
              : 'En sus des créneaux publiés : le cabinet rappelle le patient',
          ),
          h('dt', {}, 'Type'),
          h(
            'dd',
            {},
            appointment.kind === 'en_sus' ? 'En sus' : SERVICE_TYPES[appointment.service_type] || '—',
          ),
          site
            ? [
                h('dt', {}, 'Adresse'),
                h(
                  'dd',
                  {},
                  [
                    site.name,
                    site.address,
                    [site.postcode, communeName(site.commune_insee)].filter(Boolean).join(' '),
                    site.phone ? `Tél. ${site.phone}` : null,
                  ]
                    .filter(Boolean)
                    .join(' — '),
                ),
              ]
            : null,
          h('dt', {}, 'Référence'),
          h('dd', {}, appointment.identifier),
        ),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'primary', onClick: onNewRequest }, 'Nouvelle demande'),
          canEnrol
            ? h(
                'button',
                {
                  type: 'button',
                  class: 'secondary',
                  onClick: () => {
                    sessionStorage.setItem(
                      PREFILL,
                      JSON.stringify({ ...p, commune_insee: request.commune_insee }),
                    );
                    window.location.hash = '#/inscription';
                  },
                },
                'Inscrire ce patient au guichet médecin traitant',
              )
            : null,
        ),
      ),
    );
    heading.focus();
  }

  function showClose() {
    const orientation = select([['', '—'], ...Object.entries(ORIENTATIONS)], {
      id: 'orientation',
      name: 'orientation',
    });
    const reason = select(Object.entries(CLOSE_REASONS), { id: 'close-reason', name: 'reason' });
    const comment = h('textarea', { id: 'close-comment', rows: 2, maxlength: 500 });
    const formStatus = h('div', {});
    closePanel.hidden = false;
    const form = h(
      'form',
      { class: 'grid' },
      field('Orientation du patient', orientation, { required: true }),
      field('Raison', reason, { required: true }),
      field('Commentaire (facultatif)', comment, { className: 'wide' }),
      formStatus,
      h(
        'div',
        { class: 'actions wide' },
        h('button', { type: 'submit', class: 'danger' }, 'Clore la demande sans créneau'),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary',
            onClick: () => {
              closePanel.hidden = true;
            },
          },
          'Annuler',
        ),
      ),
    );
    replace(closePanel, h('h2', { id: 'close-title' }, 'Aucun créneau ne convient'), form);
    orientation.focus();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!orientation.value) {
        replace(formStatus, message('error', "Choisissez l'orientation donnée au patient."));
        return;
      }
      try {
        const closed = await snp(`/care-requests/${request.request_id}/close`, {
          method: 'POST',
          body: {
            orientation: orientation.value,
            reason: reason.value,
            comment: comment.value.trim() || null,
          },
        });
        if (state.hold) await release(false);
        state.done = true;
        stop();
        const heading = h('h2', { id: 'closed-title', tabindex: '-1' }, 'Demande close sans rendez-vous');
        replace(
          container,
          h(
            'section',
            { class: 'panel confirmation', 'aria-labelledby': 'closed-title' },
            heading,
            h(
              'p',
              {},
              `Orientation : ${ORIENTATIONS[closed.orientation] || closed.orientation}. ` +
                `Raison : ${CLOSE_REASONS[closed.closed_reason] || closed.closed_reason}.`,
            ),
            h(
              'div',
              { class: 'actions' },
              h('button', { type: 'button', class: 'primary', onClick: onNewRequest }, 'Nouvelle demande'),
            ),
          ),
        );
        heading.focus();
      } catch (error) {
        replace(formStatus, message('error', errorText(error)));
      }
    });
  }

  refresh();
  timer = setInterval(refresh, POLL_SECONDS * 1000);
  return () => {
    stop();
    if (state.hold && !state.done) release(false);
  };
}
