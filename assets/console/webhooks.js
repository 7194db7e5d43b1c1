// Webhooks: subscriptions that POST signed events to the product, their recent deliveries,
// and dead letters (deliveries that ran out of retries) with replay.

import { get, getAll, post, del, ApiError } from './api.js';
import { h, replace, table, empty, timeEl, field, fieldError, announce, uid } from './dom.js';

const EVENTS = [
  'account.pending', 'account.activated', 'account.suspended', 'account.removed',
  'account.roles_changed', 'account.removal_pending', 'account.rejected', 'account.restored',
];

const STATUS = { pending: 'Pending', delivered: 'Delivered', dead: 'Dead letter' };

export async function render(view) {
  const list = h('div');
  const formBox = h('div');
  const secretBox = h('div', { class: 'secret-box', tabindex: '-1' });

  const reload = async () => {
    const hooks = (await get('webhooks')).items;
    const sections = await Promise.all(hooks.map((w) => subscription(w, reload)));
    replace(list, hooks.length
      ? sections
      : empty('No subscriptions yet.', 'Add one below to have Scimitar POST every account change to your product, signed with the Standard Webhooks scheme.'));
  };

  // -- the form
  const url = h('input', { type: 'url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://product.example.com/hooks/scim' });
  const all = h('input', { type: 'checkbox', id: uid('all'), props: { checked: true } });
  const boxes = EVENTS.map((e) => h('input', { type: 'checkbox', value: e, id: uid('ev'), props: { checked: true } }));
  const eventsSet = h('fieldset', { class: 'event-choices' }, h('legend', { class: 'visually-hidden' }, 'Account events'),
    boxes.map((b) => h('div', { class: 'choice' }, b, h('label', { for: b.id }, h('code', {}, b.value)))));
  const sync = () => {
    eventsSet.disabled = all.checked;
  };
  all.addEventListener('change', sync);
  sync();
  const eventsError = h('p', { class: 'field-error', id: uid('events-error'), hidden: true });
  const submit = h('button', { type: 'submit' }, 'Add subscription');
  const form = h('form', { class: 'stack card', 'aria-labelledby': 'new-webhook-heading' },
    h('h2', { id: 'new-webhook-heading' }, 'New subscription'),
    field('Endpoint URL', url, 'An http or https URL of your product that answers 2xx.'),
    h('fieldset', {}, h('legend', {}, 'Events to send'),
      h('div', { class: 'choice' }, all, h('label', { for: all.id }, 'Every event, SCIM changes included (*)')),
      eventsSet, eventsError),
    h('div', { class: 'toolbar' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fieldError(url, null);
    eventsError.hidden = true;
    const events = all.checked ? ['*'] : boxes.filter((b) => b.checked).map((b) => b.value);
    if (!url.value.trim()) { fieldError(url, 'Enter the URL to POST events to.'); url.focus(); return; }
    if (!events.length) {
      eventsError.textContent = 'Choose at least one event.';
      eventsError.hidden = false;
      boxes[0].focus();
      return;
    }
    submit.disabled = true;
    try {
      const created = await post('webhooks', { url: url.value.trim(), events });
      url.value = '';
      replace(secretBox,
        h('h2', {}, 'Signing secret'),
        h('p', {}, 'Scimitar signs every delivery to ', h('code', {}, created.url), ' with this secret. It is shown only now: store it in your product to verify the ', h('code', {}, 'webhook-signature'), ' header.'),
        h('p', {}, h('code', { class: 'secret' }, created.secret)),
        h('button', { type: 'button', class: 'secondary', on: { click: () => { replace(secretBox); document.getElementById('subscriptions-heading').focus(); } } }, 'I have stored it'));
      secretBox.classList.add('shown');
      await reload();
      announce('Subscription added. Its signing secret is shown once.');
      secretBox.focus();
    } catch (e) {
      if (e instanceof ApiError && e.status === 400) { fieldError(url, e.message); url.focus(); } else announce(`The subscription was not added: ${e.message}`, 'error');
    } finally {
      submit.disabled = false;
    }
  });
  replace(formBox, form);

  await reload();
  replace(view,
    h('h1', {}, 'Webhooks'),
    h('p', { class: 'lede' }, 'Each subscription receives the events it asked for, in order per account, signed (Standard Webhooks). A delivery that fails is retried with backoff for three days, then kept as a dead letter you can replay.'),
    secretBox,
    h('h2', { id: 'subscriptions-heading', tabindex: '-1' }, 'Subscriptions'),
    list,
    formBox);
  return 'Webhooks';
}

function deliveryRows(items, replayButton) {
  return items.map((d) => [
    String(d.seq),
    h('code', {}, d.type),
    h('span', { class: `badge delivery-${d.status}` }, STATUS[d.status] || d.status),
    String(d.attempts),
    d.lastError || h('span', { class: 'muted' }, '–'),
    d.lastAttemptAt ? timeEl(d.lastAttemptAt) : h('span', { class: 'muted' }, 'not yet'),
    replayButton ? replayButton(d) : (d.nextAttemptAt ? timeEl(d.nextAttemptAt) : h('span', { class: 'muted' }, '–')),
  ]);
}

const COLUMNS = (last) => [
  { label: 'Seq' }, { label: 'Event' }, { label: 'Status' }, { label: 'Attempts' },
  { label: 'Last error' }, { label: 'Last attempt' }, { label: last, class: last === 'Actions' ? 'actions-col' : null },
];

async function subscription(w, reload) {
  const headingId = uid('hook');
  const [dead, recent] = await Promise.all([
    getAll(`webhooks/${encodeURIComponent(w.id)}/dead-letters`, 200),
    get(`webhooks/${encodeURIComponent(w.id)}/deliveries?limit=20`).then((r) => r.items),
  ]);
  const replay = (d) => {
    const b = h('button', {
      type: 'button',
      'aria-label': `Replay delivery ${d.seq} (${d.type})`,
      on: {
        click: async () => {
          b.disabled = true;
          try {
            await post(`dead-letters/${encodeURIComponent(d.id)}/replay`);
            await reload();
            announce(`Delivery ${d.seq} queued again.`);
            document.getElementById('subscriptions-heading').focus();
          } catch (e) {
            b.disabled = false;
            announce(`The delivery was not replayed: ${e.message}`, 'error');
          }
        },
      },
    }, 'Replay');
    return b;
  };
  const remove = h('button', {
    type: 'button',
    class: 'danger',
    'aria-label': `Delete the subscription to ${w.url}`,
    on: {
      click: async () => {
        if (!window.confirm(`Delete the subscription to ${w.url}? Its queued deliveries are dropped.`)) return;
        try {
          await del(`webhooks/${encodeURIComponent(w.id)}`);
          await reload();
          announce('Subscription deleted.');
          document.getElementById('subscriptions-heading').focus();
        } catch (e) {
          announce(`The subscription was not deleted: ${e.message}`, 'error');
        }
      },
    },
  }, 'Delete');
  return h('section', { class: 'card', 'aria-labelledby': headingId },
    h('h3', { id: headingId, class: 'url' }, w.url),
    h('p', {}, 'Events: ', w.events.map((e, i) => [i ? ', ' : '', h('code', {}, e)]), '. Since ', timeEl(w.created), '.'),
    h('h4', {}, 'Recent deliveries'),
    recent.length
      ? table(`Recent deliveries to ${w.url}`, COLUMNS('Next attempt'), deliveryRows(recent, null))
      : h('p', { class: 'muted' }, 'Nothing sent yet: the events it subscribes to will show here as they happen.'),
    h('h4', {}, `Dead letters (${dead.length})`),
    dead.length
      ? table(`Dead letters of ${w.url}`, COLUMNS('Actions'), deliveryRows(dead, replay))
      : h('p', { class: 'muted' }, 'None: every delivery arrived or is still being retried.'),
    h('div', { class: 'toolbar' }, remove));
}
