// Sign-in: an admin credential of the tenant is exchanged for a session (an HttpOnly cookie
// the page cannot read). The credential is sent once in the body of a POST, never in a URL,
// and the field is emptied and removed from the page as soon as the answer arrives.

import { signIn } from './api.js';
import { h, replace, field, fieldError } from './dom.js';

export function render(root, { onSignedIn, notice }) {
  const token = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    required: true,
  });
  const tokenButton = h('button', { type: 'submit' }, 'Sign in');
  const tokenForm = h('form', { class: 'stack', novalidate: true },
    field('Admin token', token,
      h('span', {}, 'A token of scope ', h('code', {}, 'admin'), ' (',
        h('code', {}, 'scimitar token create --tenant NAME --scope admin'),
        '), or an access token of an admin OAuth client.')),
    tokenButton);

  const clientId = h('input', { type: 'text', name: 'clientId', autocomplete: 'off', spellcheck: 'false', required: true });
  const secret = h('input', { type: 'password', name: 'clientSecret', autocomplete: 'off', required: true });
  const clientButton = h('button', { type: 'submit' }, 'Sign in with client credentials');
  const clientForm = h('form', { class: 'stack', novalidate: true },
    field('Client ID', clientId),
    field('Client secret', secret, h('span', {}, 'From ', h('code', {}, 'scimitar client create --tenant NAME --scope admin'), '.')),
    clientButton);

  const submit = (form, button, inputs, body) => async (event) => {
    event.preventDefault();
    for (const i of inputs) fieldError(i, null);
    const empty = inputs.find((i) => !i.value.trim());
    if (empty) {
      fieldError(empty, 'Enter a value to sign in.');
      empty.focus();
      return;
    }
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      const session = await signIn(body());
      // The credential leaves the page: emptied, then the forms are replaced.
      for (const i of inputs) i.value = '';
      root.replaceChildren();
      onSignedIn(session);
    } catch (e) {
      const last = inputs[inputs.length - 1];
      for (const i of inputs) i.value = i.type === 'password' ? '' : i.value;
      fieldError(last, e.message);
      (inputs[0].value ? last : inputs[0]).focus();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  };
  tokenForm.addEventListener('submit', submit(tokenForm, tokenButton, [token], () => ({ token: token.value.trim() })));
  clientForm.addEventListener('submit', submit(clientForm, clientButton, [clientId, secret],
    () => ({ clientId: clientId.value.trim(), clientSecret: secret.value.trim() })));

  replace(root, h('div', { class: 'page narrow' },
    h('h1', {}, 'Sign in'),
    notice ? h('p', { class: 'notice', role: 'note' }, notice) : null,
    h('p', {}, 'Sign in with an admin credential of your tenant. It is exchanged for a session that ends after 30 minutes without use, 8 hours at most, or when you sign out; the credential itself is not kept in this page.'),
    tokenForm,
    h('details', { class: 'alt-sign-in' },
      h('summary', {}, 'Use OAuth client credentials instead'),
      clientForm)));
}
