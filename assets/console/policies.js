// Policies: what happens when the identity provider adds a user (provisioning) and when it
// deactivates or deletes one (deprovisioning).

import { get, put } from './api.js';
import { h, replace, announce } from './dom.js';

const CHOICES = {
  provisioning: {
    legend: 'When the identity provider adds a user',
    options: [
      ['auto', 'Automatic', 'The account is active at once, with the roles its rules grant.'],
      ['review', 'Review', 'The account waits in the review queue until an admin approves or rejects it.'],
    ],
  },
  deprovisioning: {
    legend: 'When the identity provider deactivates or deletes a user',
    options: [
      ['auto', 'Automatic', 'Access is cut in the same transaction: the account is suspended (deactivated) or removed (deleted).'],
      ['notify', 'Notify', 'The account is flagged in pending removals and keeps its access until an admin confirms.'],
    ],
  },
};

export async function render(view) {
  const policy = await get('policy');
  const radios = {};
  const fieldsets = Object.entries(CHOICES).map(([name, c]) => {
    radios[name] = [];
    return h('fieldset', { class: 'choices' },
      h('legend', {}, c.legend),
      c.options.map(([value, label, hint]) => {
        const id = `${name}-${value}`;
        const input = h('input', { type: 'radio', name, value, id, 'aria-describedby': `${id}-hint`, props: { checked: policy[name] === value } });
        radios[name].push(input);
        return h('div', { class: 'choice' },
          input,
          h('label', { for: id }, label),
          h('p', { class: 'hint', id: `${id}-hint` }, hint));
      }));
  });
  const button = h('button', { type: 'submit' }, 'Save policies');
  const form = h('form', { class: 'stack' }, fieldsets, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = (name) => radios[name].find((r) => r.checked).value;
    button.disabled = true;
    try {
      const saved = await put('policy', { provisioning: chosen('provisioning'), deprovisioning: chosen('deprovisioning') });
      announce(`Policies saved: provisioning ${saved.provisioning}, deprovisioning ${saved.deprovisioning}.`);
    } catch (e) {
      announce(`The policies were not saved: ${e.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  });
  replace(view,
    h('h1', {}, 'Policies'),
    h('p', { class: 'lede' }, 'These apply to every change your identity provider makes from now on; accounts already waiting keep their place.'),
    form);
  return 'Policies';
}
