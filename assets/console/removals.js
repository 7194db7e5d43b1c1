// Pending removals (BILL): accounts the identity provider deactivated or deleted while the
// deprovisioning policy is `notify`. They keep their access until an admin confirms the
// removal here (or restores the account).

import { get, getAll, post } from './api.js';
import { h, replace, table, empty, roleNames, timeEl, ago, announce, uid } from './dom.js';
import { personName } from './accounts.js';

const REASONS = {
  deactivated: 'Deactivated in the identity provider',
  deleted: 'Deleted in the identity provider',
};

export async function render(view) {
  const [policy, flagged] = await Promise.all([get('policy'), getAll('removals', 1000)]);
  const content = h('div');
  const refresh = async (message) => {
    build(content, policy, await getAll('removals', 1000), refresh);
    announce(message);
    document.getElementById('removals-heading').focus();
  };
  build(content, policy, flagged, refresh);
  replace(view,
    h('h1', {}, 'Pending removals'),
    h('p', { class: 'lede' }, 'Accounts your identity provider deactivated or deleted while the deprovisioning policy is "notify". They keep their access until you confirm the removal, or restore a deactivated one to keep it.'),
    policy.deprovisioning === 'auto'
      ? h('p', { class: 'notice' }, 'Deprovisioning is automatic: access is cut as soon as the identity provider deactivates a user, so nothing waits here. To confirm removals yourself, change it in ',
        h('a', { href: '/admin/policies' }, 'Policies'), '.')
      : null,
    content);
  return 'Pending removals';
}

function build(content, policy, flagged, refresh) {
  if (!flagged.length) {
    replace(content,
      h('h2', { id: 'removals-heading', tabindex: '-1' }, 'Flagged accounts'),
      empty('No removal is waiting.',
        policy.deprovisioning === 'notify'
          ? 'When your identity provider deactivates or deletes a user, the account appears here for you to confirm. Its history is on its page in '
          : 'Set deprovisioning to "notify" in ',
        policy.deprovisioning === 'notify'
          ? h('a', { href: '/admin/accounts' }, 'Accounts')
          : h('a', { href: '/admin/policies' }, 'Policies'),
        policy.deprovisioning === 'notify' ? '.' : ' to be asked before access is cut.'));
    return;
  }
  const action = (a, label, path, done, cls) => {
    const b = h('button', {
      type: 'button',
      class: cls,
      'aria-describedby': a.nameId,
      on: {
        click: async () => {
          b.disabled = true;
          try {
            const after = await post(path);
            await refresh(done(after));
          } catch (e) {
            b.disabled = false;
            announce(`Could not ${label.toLowerCase()} for ${a.userName}: ${e.message}`, 'error');
          }
        },
      },
    }, label);
    return b;
  };
  const rows = flagged.map((a) => {
    a.nameId = uid('removal');
    const reason = a.removalPending ? a.removalPending.reason : '';
    const confirm = action(a, 'Confirm removal', `removals/${encodeURIComponent(a.id)}/confirm`,
      (after) => `Removal of ${a.userName} confirmed: the account is ${after.state} and holds no roles.`, 'danger');
    // Only a deactivation can be overruled: a deleted user has nothing left to keep access for.
    const restore = reason === 'deactivated'
      ? action(a, 'Restore', `removals/${encodeURIComponent(a.id)}/restore`,
        () => `Restored ${a.userName}: the removal flag is cleared and the account keeps its access.`, 'secondary')
      : null;
    return [
      h('span', { id: a.nameId }, h('a', { href: `/admin/accounts/${encodeURIComponent(a.id)}` }, personName(a)),
        personName(a) === a.userName ? null : h('span', { class: 'muted block' }, a.userName)),
      REASONS[reason] || reason,
      a.removalPending ? h('span', {}, timeEl(a.removalPending.since), h('span', { class: 'muted block' }, ago(a.removalPending.since))) : '',
      roleNames(a.roles),
      h('div', { class: 'actions' }, confirm, restore),
    ];
  });
  replace(content,
    h('h2', { id: 'removals-heading', tabindex: '-1' }, `Flagged accounts (${flagged.length})`),
    table('Accounts flagged for removal', [
      { label: 'Account' },
      { label: 'Why' },
      { label: 'Flagged' },
      { label: 'Still holds' },
      { label: 'Actions', class: 'actions-col' },
    ], rows));
}
