// New patients proposed to a GP by the CPTS (patient-matching): accept to become their médecin traitant,
// or decline.

import { errorText, matching } from '../api.js';
import { openDialog } from '../dialog.js';
import { field, h, message, replace, select } from '../dom.js';
import { dateTime, GP_DECLINE_REASONS, km, PROPOSAL_STATUS } from '../format.js';

const POLL_SECONDS = 30;

function proposalView(proposal, reload) {
  const p = proposal.patient;
  const pending = proposal.status === 'pending';
  const name = p ? `${p.first_name} ${p.family_name.toUpperCase()}` : 'Patient';
  const accept = async () => {
    try {
      await matching(`/proposals/${proposal.proposal_id}/accept`, { method: 'POST' });
      reload(
        `Vous êtes désormais le médecin traitant de ${name} : ` +
          "appelez le patient pour convenir d'un premier rendez-vous.",
      );
    } catch (error) {
      reload(null, errorText(error));
    }
  };
  const decline = async () => {
    const reason = select(Object.entries(GP_DECLINE_REASONS), { id: 'decline-reason' });
    const done = await openDialog({
      title: `Refuser ${name} ?`,
      content: [field('Raison', reason)],
      confirmLabel: 'Refuser la proposition',
      danger: true,
      onConfirm: async () => {
        try {
          return await matching(`/proposals/${proposal.proposal_id}/decline`, {
            method: 'POST',
            body: { reason: reason.value },
          });
        } catch (error) {
          throw new Error(errorText(error));
        }
      },
    });
    if (done) reload('Proposition refusée : le patient ne vous sera plus proposé.');
  };
  return h(
    'li',
    { class: `panel proposal ${proposal.status}`, dataset: { proposalId: proposal.proposal_id } },
    h(
      'div',
      { class: 'card-head' },
      h('h3', {}, name),
      h(
        'span',
        { class: `badge ${pending ? 'warn' : proposal.status === 'accepted' ? 'yes' : 'no'}` },
        PROPOSAL_STATUS[proposal.status] || proposal.status,
      ),
    ),
    p
      ? h(
          'p',
          {},
          [
            `${p.age} ans${p.is_child ? ' (enfant)' : ''}`,
            p.commune_name || p.commune_insee,
            km(proposal.distance_km),
            p.needs_home_visit ? 'ne peut pas se déplacer' : null,
            p.phone ? `Tél. ${p.phone}` : null,
          ]
            .filter(Boolean)
            .join(' · '),
        )
      : null,
    h(
      'p',
      { class: 'muted' },
      `Proposé le ${dateTime(proposal.made_at)}` +
        (pending
          ? ` — réponse attendue avant le ${dateTime(proposal.deadline)}`
          : proposal.decided_at
            ? ` — décidé le ${dateTime(proposal.decided_at)}`
            : ''),
    ),
    pending
      ? h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'primary', onClick: accept }, 'Accepter comme patient'),
          h('button', { type: 'button', class: 'secondary', onClick: decline }, 'Refuser'),
        )
      : null,
  );
}

export async function render(main) {
  const notice = h('div', {});
  const pendingList = h('div', {});
  const decidedList = h('div', {});
  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Nouveaux patients proposés'),
      h(
        'p',
        { class: 'scope' },
        'Patients sans médecin traitant de votre CPTS, proposés selon votre capacité déclarée.',
      ),
    ),
    notice,
    h(
      'section',
      { 'aria-labelledby': 'pending-title' },
      h('h2', { id: 'pending-title' }, 'En attente de votre réponse'),
      pendingList,
    ),
    h(
      'section',
      { 'aria-labelledby': 'decided-title' },
      h('h2', { id: 'decided-title' }, 'Décidées récemment'),
      decidedList,
    ),
  );

  async function load(saved = null, failed = null) {
    if (saved || failed) replace(notice, message(failed ? 'error' : 'success', failed || saved));
    try {
      const page = await matching('/proposals', { query: { limit: 100 } });
      const pending = page.items.filter((p) => p.status === 'pending');
      const decided = page.items.filter((p) => p.status !== 'pending').slice(0, 20);
      replace(
        pendingList,
        pending.length
          ? h(
              'ul',
              { class: 'plain-list' },
              pending.map((p) => proposalView(p, load)),
            )
          : h('p', { class: 'muted' }, 'Aucune proposition en attente.'),
      );
      replace(
        decidedList,
        decided.length
          ? h(
              'ul',
              { class: 'plain-list' },
              decided.map((p) => proposalView(p, load)),
            )
          : h('p', { class: 'muted' }, 'Aucune.'),
      );
    } catch (error) {
      replace(notice, message('error', errorText(error)));
    }
  }
  await load();
  const timer = setInterval(() => {
    if (!document.hidden) load();
  }, POLL_SECONDS * 1000);
  return () => clearInterval(timer);
}
