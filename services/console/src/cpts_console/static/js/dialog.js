// Modal dialogs on the native <dialog> element (focus trapped, Escape closes, focus returns to the opener).

import { h, uid } from './dom.js';

/**
 * Ask something in a modal form; resolves with the value `onConfirm(form)` returns, or null when cancelled.
 * `onConfirm` may throw an Error whose message is shown in the dialog (the dialog stays open).
 */
export function openDialog({
  title,
  content = [],
  confirmLabel = 'Valider',
  danger = false,
  onConfirm = () => true,
}) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = uid('dialog-title');
    const error = h('div', { role: 'alert', class: 'dialog-error' });
    const dialog = h('dialog', { 'aria-labelledby': titleId });
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: titleId }, title),
      content,
      error,
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, confirmLabel),
        h('button', { type: 'button', class: 'secondary', onClick: () => dialog.close('cancel') }, 'Annuler'),
      ),
    );
    dialog.append(form);
    let result = null;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        result = await onConfirm(form);
        dialog.close('ok');
      } catch (err) {
        error.replaceChildren(h('p', { class: 'message error' }, err.message));
      }
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok' ? result : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
