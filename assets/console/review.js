// Review queue (Ramp, BILL): new hires the identity provider pushed while the provisioning
// policy is `review`. Approve or reject one, the ones ticked, or a whole SCIM group at once.

import { get, getAll, post } from './api.js';
import { h, replace, table, empty, entitlementList, roleNames, timeEl, ago, announce, uid } from './dom.js';
import { personName, profileCell, groupNames } from './accounts.js';

export async function render(view) {
  const [policy, candidates] = await Promise.all([get('policy'), getAll('candidates', 1000).then(byArrival)]);
  const content = h('div');
  const refresh = async (message, focusId) => {
    const fresh = byArrival(await getAll('candidates', 1000));
    build(content, policy, fresh, refresh);
    if (message) announce(message);
    const target = document.getElementById(focusId || 'candidates-heading');
    if (target) target.focus();
  };
  build(content, policy, candidates, refresh);
  replace(view,
    h('h1', {}, 'Review queue'),
    h('p', { class: 'lede' }, 'New accounts wait here while the provisioning policy is "review". Approving one makes it active with the roles its rules grant; rejecting it removes it.'),
    policy.provisioning === 'auto'
      ? h('p', { class: 'notice' }, 'Provisioning is automatic: new users become active at once and skip this queue. To review them first, change it in ',
        h('a', { href: '/admin/policies' }, 'Policies'), '.')
      : null,
    content);
  return 'Review queue';
}

/** What a candidate would get once approved: the roles its rules grant now. */
function wouldGet(c) {
  if (!c.wouldGet) return h('span', { class: 'muted' }, 'decided by the rules on approval');
  if (!c.wouldGet.roles.length) return h('span', { class: 'muted' }, 'no role: no rule matches yet');
  return h('div', {}, h('p', { class: 'cell-title' }, roleNames(c.wouldGet.roles)), entitlementList(c.wouldGet.entitlements));
}

/** Oldest first: a queue. */
const byArrival = (list) => [...list].sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));

/** The SCIM groups the candidates arrived in, with their pending members. */
function cohorts(candidates) {
  const groups = new Map();
  for (const c of candidates) {
    for (const g of c.groups || []) {
      if (!groups.has(g.id)) groups.set(g.id, { ...g, members: [] });
      groups.get(g.id).members.push(c);
    }
  }
  return [...groups.values()].sort((a, b) => (a.displayName || '').localeCompare(b.displayName || ''));
}

async function act(label, calls, refresh) {
  const done = [];
  const failed = [];
  for (const [c, call] of calls) {
    try {
      done.push([c, await call()]);
    } catch (e) {
      failed.push(`${c.userName}: ${e.message}`);
    }
  }
  const names = done.map(([c]) => c.userName).join(', ');
  let message = done.length ? `${label} ${done.length === 1 ? names : `${done.length} accounts (${names})`}.` : '';
  if (failed.length) message += ` Not done: ${failed.join('; ')}`;
  await refresh(message.trim());
}

function approveMessage(a) {
  const roles = (a.roles || []).map((r) => r.name);
  return roles.length ? ` It is active with ${roles.join(', ')}.` : ' It is active; no rule grants it a role yet.';
}

function build(content, policy, candidates, refresh) {
  if (!candidates.length) {
    replace(content,
      h('h2', { id: 'candidates-heading', tabindex: '-1' }, 'Candidates'),
      empty('No one is waiting for review.',
        policy.provisioning === 'review'
          ? 'New users your identity provider pushes will appear here. Meanwhile, check the '
          : 'Turn provisioning to "review" in ',
        policy.provisioning === 'review'
          ? h('a', { href: '/admin/roles' }, 'roles and rules')
          : h('a', { href: '/admin/policies' }, 'Policies'),
        policy.provisioning === 'review'
          ? ' that decide what an approved account gets.'
          : ' to approve new users before they get access.'));
    return;
  }

  const groups = cohorts(candidates);
  const cohortSection = groups.length
    ? h('section', { 'aria-labelledby': 'cohorts-heading', class: 'card' },
      h('h2', { id: 'cohorts-heading' }, 'Approve a group at once'),
      h('p', { class: 'hint' }, 'Every pending member of the SCIM group is approved together, or none is.'),
      h('ul', { class: 'cohorts' }, groups.map((g) => {
        const nameId = uid('group');
        const button = h('button', {
          type: 'button',
          'aria-describedby': nameId,
          on: {
            click: async () => {
              button.disabled = true;
              try {
                const r = await post('candidates/approve', { group: g.id });
                await refresh(`Approved ${r.approved.length} ${r.approved.length === 1 ? 'account' : 'accounts'} of ${g.displayName}.`);
              } catch (e) {
                button.disabled = false;
                announce(`Could not approve ${g.displayName}: ${e.message}`, 'error');
              }
            },
          },
        }, 'Approve group');
        return h('li', {},
          h('span', { id: nameId }, h('strong', {}, g.displayName || g.id), ` (${g.members.length} pending: ${g.members.map((m) => m.userName).join(', ')})`),
          ' ', button);
      })))
    : null;

  const boxes = new Map();
  const selectAll = h('input', { type: 'checkbox', id: uid('all') });
  selectAll.addEventListener('change', () => {
    for (const b of boxes.values()) b.checked = selectAll.checked;
  });
  const selected = () => candidates.filter((c) => boxes.get(c.id).checked);
  const bulk = (label, verb, path) => h('button', {
    type: 'button',
    class: verb === 'reject' ? 'danger' : null,
    on: {
      click: async () => {
        const chosen = selected();
        if (!chosen.length) {
          announce(`Tick the candidates to ${verb} first.`, 'error');
          return;
        }
        await act(verb === 'approve' ? 'Approved' : 'Rejected', chosen.map((c) => [c, () => post(path(c))]), refresh);
      },
    },
  }, label);

  const rows = candidates.map((c) => {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${c.userName}` });
    boxes.set(c.id, box);
    const who = uid('cand');
    const approve = h('button', {
      type: 'button',
      'aria-describedby': who,
      on: {
        click: async () => {
          approve.disabled = true;
          try {
            const a = await post(`candidates/${encodeURIComponent(c.id)}/approve`);
            await refresh(`Approved ${c.userName}.${approveMessage(a)}`);
          } catch (e) {
            approve.disabled = false;
            announce(`Could not approve ${c.userName}: ${e.message}`, 'error');
          }
        },
      },
    }, 'Approve');
    const reject = h('button', {
      type: 'button',
      class: 'danger',
      'aria-describedby': who,
      on: {
        click: async () => {
          reject.disabled = true;
          try {
            await post(`candidates/${encodeURIComponent(c.id)}/reject`);
            await refresh(`Rejected ${c.userName}: the account is removed.`);
          } catch (e) {
            reject.disabled = false;
            announce(`Could not reject ${c.userName}: ${e.message}`, 'error');
          }
        },
      },
    }, 'Reject');
    return [
      box,
      h('span', { id: who }, h('a', { href: `/admin/accounts/${encodeURIComponent(c.id)}` }, personName(c)),
        personName(c) === c.userName ? null : h('span', { class: 'muted block' }, c.userName)),
      profileCell(c, 'department'),
      profileCell(c, 'title'),
      c.profile && c.profile.manager ? (c.profile.manager.displayName || c.profile.manager.value) : h('span', { class: 'muted' }, '–'),
      groupNames(c.groups),
      wouldGet(c),
      h('span', {}, timeEl(c.created), h('br'), h('span', { class: 'muted' }, ago(c.created))),
      h('div', { class: 'actions' }, approve, reject),
    ];
  });

  replace(content,
    cohortSection,
    h('h2', { id: 'candidates-heading', tabindex: '-1' }, `Candidates (${candidates.length})`),
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'With the ticked candidates' },
      h('span', { class: 'check' }, selectAll, h('label', { for: selectAll.id }, 'Select all')),
      bulk('Approve selected', 'approve', (c) => `candidates/${encodeURIComponent(c.id)}/approve`),
      bulk('Reject selected', 'reject', (c) => `candidates/${encodeURIComponent(c.id)}/reject`)),
    table('Candidates waiting for review', [
      { label: h('span', { class: 'visually-hidden' }, 'Select'), name: 'Select', class: 'select' },
      { label: 'Name' },
      { label: 'Department' },
      { label: 'Title' },
      { label: 'Manager' },
      { label: 'Groups' },
      { label: 'Would get' },
      { label: 'Arrived' },
      { label: 'Actions', class: 'actions-col' },
    ], rows));
}
