// An accessible autocomplete (ARIA 1.2 combobox with a listbox): communes, professionals.

import { h, uid } from './dom.js';

/**
 * combobox({search: async (text) => [{value, label, detail}], onSelect, minLength, placeholder})
 * Returns {element, input, selected(), set(item), reset()}. Arrow keys move, Enter picks, Escape closes.
 */
export function combobox({
  search,
  onSelect = () => {},
  minLength = 2,
  placeholder = '',
  id = uid('combo'),
}) {
  const listId = `${id}-list`;
  const input = h('input', {
    id,
    type: 'text',
    role: 'combobox',
    autocomplete: 'off',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    placeholder,
  });
  const list = h('ul', { id: listId, role: 'listbox', class: 'combo-list', hidden: true });
  const element = h('div', { class: 'combo' }, input, list);
  let items = [];
  let active = -1;
  let chosen = null;
  let timer = null;
  let sequence = 0;

  function close() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) {
      input.setAttribute('aria-activedescendant', list.children[index].id);
      list.children[index].scrollIntoView({ block: 'nearest' });
    }
  }

  function pick(index) {
    const item = items[index];
    if (!item) return;
    chosen = item;
    input.value = item.label;
    close();
    onSelect(item);
  }

  function show(found) {
    items = found;
    list.replaceChildren(
      ...found.map((item, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            'aria-selected': 'false',
            class: 'combo-option',
            onMousedown: (event) => {
              event.preventDefault();
              pick(i);
            },
          },
          h('span', {}, item.label),
          item.detail ? h('span', { class: 'combo-detail' }, item.detail) : null,
        ),
      ),
    );
    if (!found.length)
      list.append(
        h('li', { class: 'combo-empty', role: 'option', 'aria-disabled': 'true' }, 'Aucun résultat'),
      );
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    active = -1;
  }

  input.addEventListener('input', () => {
    chosen = null;
    clearTimeout(timer);
    const text = input.value.trim();
    if (text.length < minLength) {
      close();
      return;
    }
    timer = setTimeout(async () => {
      const mine = ++sequence;
      try {
        const found = await search(text);
        if (mine === sequence) show(found);
      } catch {
        if (mine === sequence) close();
      }
    }, 200);
  });
  input.addEventListener('keydown', (event) => {
    if (list.hidden) {
      if (event.key === 'ArrowDown' && items.length) {
        show(items);
        highlight(0);
        event.preventDefault();
      }
      return;
    }
    if (event.key === 'ArrowDown') {
      highlight(Math.min(active + 1, items.length - 1));
      event.preventDefault();
    } else if (event.key === 'ArrowUp') {
      highlight(Math.max(active - 1, 0));
      event.preventDefault();
    } else if (event.key === 'Enter' && active >= 0) {
      pick(active);
      event.preventDefault();
    } else if (event.key === 'Escape') {
      close();
      event.preventDefault();
    }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));

  return {
    element,
    input,
    selected: () => chosen,
    set(item) {
      chosen = item;
      input.value = item ? item.label : '';
    },
    reset() {
      chosen = null;
      input.value = '';
      close();
    },
  };
}
