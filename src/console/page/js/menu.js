// The account menu in the top bar: the initials button opens Profile and Sign out. Escape, a click elsewhere or
// choosing an item closes it; arrow keys move between the items.
import { $ } from './dom.js';
import { onReset } from './shell.js';

const button = $('account-button');
const menu = $('account-menu');
const items = () => [...menu.querySelectorAll('[role="menuitem"]')];

function openMenu() {
  menu.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  items()[0]?.focus();
}

/** Closes the menu; focus goes back to its button unless told otherwise. */
export function closeMenu({ focus = true } = {}) {
  if (menu.hidden) return;
  menu.hidden = true;
  button.setAttribute('aria-expanded', 'false');
  if (focus) button.focus();
}

button.addEventListener('click', () => (menu.hidden ? openMenu() : closeMenu()));
button.addEventListener('keydown', (event) => {
  if (event.key === 'ArrowDown' && menu.hidden) {
    event.preventDefault();
    openMenu();
  }
});
menu.addEventListener('keydown', (event) => {
  const list = items();
  const at = list.indexOf(document.activeElement);
  if (event.key === 'Escape') {
    event.preventDefault();
    closeMenu();
  } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    event.preventDefault();
    const step = event.key === 'ArrowDown' ? 1 : -1;
    list[(at + step + list.length) % list.length]?.focus();
  } else if (event.key === 'Tab') {
    closeMenu({ focus: false });
  }
});
menu.addEventListener('click', (event) => {
  if (event.target instanceof Element && event.target.closest('[role="menuitem"]')) closeMenu({ focus: false });
});
document.addEventListener('click', (event) => {
  if (!menu.hidden && event.target instanceof Node && !menu.contains(event.target) && !button.contains(event.target)) {
    closeMenu({ focus: false });
  }
});
onReset(() => closeMenu({ focus: false }));
