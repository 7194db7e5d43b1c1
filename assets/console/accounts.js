// Accounts: search and filter every account of the tenant; an account's page shows its
// roles and entitlements, its SCIM attributes and its timeline from the change feed (what
// happened, when, and which credential caused it: the AngelList story).

import { get, getAll, query } from './api.js';
import {
  h, replace, table, empty, entitlementList, roleNames, timeEl, clockTime, ago, duration, field,
  fieldError, announce, clearStatus,
} from './dom.js';

const STATES = ['pending', 'active', 'suspended', 'removed'];

/** The person's name from the SCIM profile, else the userName. */
export function personName(a) {
  const p = a.profile || {};
  const name = p.displayName || [p.givenName, p.familyName].filter(Boolean).join(' ');
  return name || a.userName;
}

/** One profile attribute for a cell (a dash when absent). */
export function profileCell(a, key) {
  const v = a.profile && a.profile[key];
  return v ? String(v) : h('span', { class: 'muted' }, '–');
}

export function groupNames(groups) {
  if (!groups || !groups.length) return h('span', { class: 'muted' }, 'none');
  return groups.map((g) => g.displayName || g.id).join(', ');
}

export function stateBadge(a) {
  return h('span', { class: `badge state-${a.state}` }, a.state,
    a.removalPending ? ' · removal pending' : null);
}

// ---------------------------------------------------------------------------------------
// The list

const DEPARTMENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department';

/** The SCIM filter of the form: the search words (in userName, display name or family
 * name), the department (exact) and the advanced filter, all of them. */
function scimFilter(search, department, advanced) {
  const parts = [];
  // A SCIM string is a JSON string (RFC 7644 §3.4.2.2), so JSON escaping is exact.
  if (search) {
    const s = JSON.stringify(search);
    parts.push(`(userName co ${s} or displayName co ${s} or name.familyName co ${s})`);
  }
  if (department) parts.push(`${DEPARTMENT} eq ${JSON.stringify(department)}`);
  if (advanced) parts.push(parts.length ? `(${advanced})` : advanced);
  return parts.join(' and ');
}

export async function render(view) {
  const params = new URLSearchParams(window.location.search);
  const [roles, groups] = await Promise.all([get('roles').then((r) => r.items), getAll('groups', 1000)]);
  const stateSel = h('select', { name: 'state' },
    h('option', { value: '' }, 'Any state'),
    STATES.map((s) => h('option', { value: s, selected: params.get('state') === s }, s)));
  const roleSel = h('select', { name: 'role' },
    h('option', { value: '' }, 'Any role'),
    roles.map((r) => h('option', { value: r.id, selected: params.get('role') === r.id }, r.name)));
  const groupSel = h('select', { name: 'group' },
    h('option', { value: '' }, 'Any group'),
    groups.map((g) => h('option', { value: g.id, selected: params.get('group') === g.id }, g.displayName || g.id)));
  const search = h('input', { type: 'text', name: 'search', autocomplete: 'off', props: { value: params.get('search') || '' } });
  const department = h('input', { type: 'text', name: 'department', autocomplete: 'off', props: { value: params.get('department') || '' } });
  const advanced = h('textarea', { name: 'filter', rows: '2', spellcheck: 'false', autocomplete: 'off' });
  advanced.value = params.get('filter') || '';
  const results = h('div', { class: 'results' });
  const form = h('form', { role: 'search', 'aria-label': 'Filter accounts', class: 'filters' },
    field('Search', search, 'Part of a userName or name.'),
    field('State', stateSel),
    field('Role', roleSel),
    field('Group', groupSel),
    field('Department', department, 'Exactly as the identity provider sends it.'),
    h('details', { class: 'wide', open: advanced.value ? true : null },
      h('summary', {}, 'Advanced: a SCIM filter'),
      field('SCIM filter', advanced,
        h('span', {}, 'Over the user, as in ', h('code', {}, '/scim/v2/Users?filter='), ', e.g. ',
          h('code', {}, 'title co "Manager" and emails[type eq "work"].value ew "@example.com"')))),
    h('div', { class: 'filter-actions wide' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear filters')));

  const filters = () => ({
    search: search.value.trim(),
    state: stateSel.value,
    role: roleSel.value,
    group: groupSel.value,
    department: department.value.trim(),
    filter: advanced.value.trim(),
  });
  const load = async (announceIt) => {
    const f = filters();
    clearStatus();
    fieldError(advanced, null);
    fieldError(department, null);
    fieldError(search, null);
    const path = query('accounts', {
      state: f.state, role: f.role, group: f.group, filter: scimFilter(f.search, f.department, f.filter), limit: 100,
    });
    try {
      const page = await get(path);
      showResults(results, page, path, f);
      if (announceIt) {
        announce(`${countText(page.items.length, page.nextCursor)} found.`);
        document.getElementById('results-heading').focus();
      }
    } catch (e) {
      if (e.status === 400 && (f.filter || f.department || f.search)) {
        // The filter parser's message names the problem and its position.
        const target = f.filter ? advanced : (f.department ? department : search);
        fieldError(target, e.message);
        replace(results, h('h2', { id: 'results-heading', tabindex: '-1' }, 'No results: the filter is not valid'));
        if (announceIt) target.focus();
      } else {
        replace(results, h('p', { class: 'error', role: 'alert' }, e.message));
      }
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    window.history.pushState({}, '', query('/admin/accounts', filters()));
    load(true);
  });
  form.addEventListener('reset', () => {
    window.setTimeout(() => {
      window.history.pushState({}, '', '/admin/accounts');
      load(true);
    }, 0);
  });
  await load(false);
  replace(view,
    h('h1', {}, 'Accounts'),
    h('p', { class: 'lede' }, 'Every account of the tenant: one per user your identity provider pushed, kept after removal for the audit trail.'),
    form,
    results);
  return 'Accounts';
}

/** `1 account`, `12 accounts`, `100+ accounts` (when there are more pages). */
function countText(n, more) {
  return `${n}${more ? '+' : ''} ${n === 1 && !more ? 'account' : 'accounts'}`;
}

function showResults(results, page, path, f) {
  const filtered = Object.values(f).some(Boolean);
  if (!page.items.length) {
    replace(results,
      h('h2', { id: 'results-heading', tabindex: '-1' }, 'No accounts'),
      filtered
        ? empty('No account matches these filters.', 'Clear the filters to see every account.')
        : empty('There are no accounts yet.', 'Accounts appear when your identity provider pushes users to the SCIM endpoint (/scim/v2/Users). Give it a token with ',
          h('code', {}, 'scimitar token create --tenant NAME'), '.'));
    return;
  }
  const items = [...page.items];
  const body = h('div');
  let cursor = page.nextCursor;
  const more = h('button', {
    type: 'button',
    class: 'secondary',
    on: {
      click: async () => {
        const sep = path.includes('?') ? '&' : '?';
        const next = await get(`${path}${sep}cursor=${encodeURIComponent(cursor)}`);
        items.push(...next.items);
        cursor = next.nextCursor;
        draw();
        announce(`${next.items.length} more accounts shown.`);
      },
    },
  }, 'Show more accounts');
  const draw = () => {
    replace(body, table('Accounts', [
      { label: 'Account', header: true },
      { label: 'State' },
      { label: 'Department' },
      { label: 'Title' },
      { label: 'Roles' },
      { label: 'Groups' },
      { label: 'Last change' },
    ], items.map((a) => [
      h('span', {}, h('a', { href: `/admin/accounts/${encodeURIComponent(a.id)}` }, a.userName),
        personName(a) === a.userName ? null : h('span', { class: 'muted block' }, personName(a))),
      stateBadge(a),
      profileCell(a, 'department'),
      profileCell(a, 'title'),
      roleNames(a.roles),
      groupNames(a.groups),
      timeEl(a.lastModified),
    ])), cursor ? more : null);
  };
  draw();
  replace(results,
    h('h2', { id: 'results-heading', tabindex: '-1' }, countText(items.length, cursor)),
    body);
}

// ---------------------------------------------------------------------------------------
// One account

const SCIM = 'urn:ietf:params:scim:event:prov:';

/** What an event means, in words. */
function describe(e) {
  const account = (e.data && e.data.account) || {};
  switch (e.type) {
    case `${SCIM}create:full`: return 'Created by the identity provider (SCIM POST)';
    case `${SCIM}put:full`: return 'Replaced by the identity provider (SCIM PUT)';
    case `${SCIM}patch:full`: return 'Updated by the identity provider (SCIM PATCH)';
    case `${SCIM}activate`: return 'Activated in the identity provider';
    case `${SCIM}deactivate`: return 'Deactivated in the identity provider';
    case `${SCIM}delete`: return 'Deleted in the identity provider';
    case 'account.pending': return 'Waiting for review';
    case 'account.activated': return `Active: access granted${account.roles && account.roles.length ? ` (${account.roles.map((r) => r.name).join(', ')})` : ''}`;
    case 'account.rejected': return 'Rejected by an admin: removed';
    case 'account.suspended': return 'Suspended: access cut';
    case 'account.removed': return 'Removed: access cut';
    case 'account.removal_pending': return `Flagged for removal (${account.removalPending ? account.removalPending.reason : 'deactivated'} in the identity provider); access kept until an admin confirms`;
    case 'account.restored': return 'Restored by an admin: the removal flag is cleared, access kept';
    case 'account.roles_changed': {
      const before = (e.data.previousRoles || []).map((r) => r.name);
      const after = (account.roles || []).map((r) => r.name);
      return `Roles changed: ${before.length ? before.join(', ') : 'none'} → ${after.length ? after.join(', ') : 'none'}`;
    }
    default: return e.type;
  }
}

/** For an access cut: when, and how long after the identity provider's change. */
function accessCut(e, earlier) {
  if (e.type !== 'account.suspended' && e.type !== 'account.removed') return null;
  const cause = [...earlier].reverse().find((x) => x.type === `${SCIM}deactivate` || x.type === `${SCIM}delete`);
  if (!cause) return `Access cut at ${clockTime(e.time)}.`;
  const ms = new Date(e.time) - new Date(cause.time);
  const after = ms < 1000 ? 'in the same transaction as' : `${duration(Math.round(ms / 1000))} after`;
  const what = cause.type.endsWith('delete') ? 'deletion' : 'deactivation';
  return `Access cut at ${clockTime(e.time)}, ${after} the identity provider's ${what} (${clockTime(cause.time)}).`;
}

const KINDS = { token: 'token', client: 'OAuth client', jwt: 'identity provider token' };

/** Which credential's request did it (`credential` of a timeline event). */
function who(e) {
  if (!('credential' in e)) return null;
  const c = e.credential;
  if (!c) return h('p', { class: 'event-who' }, 'by the bootstrap token (SCIMITAR_BOOTSTRAP_TOKEN)');
  const kind = KINDS[c.kind] || 'credential';
  return h('p', { class: 'event-who' }, `by ${kind} `,
    c.label ? [`“${c.label}” `, h('code', {}, c.id)] : h('code', {}, c.id));
}

function timeline(events) {
  if (!events.length) {
    return empty('Nothing has happened to this account yet.', 'Changes from the identity provider and decisions of admins appear here as they happen.');
  }
  return h('ol', { class: 'timeline' }, events.map((e, i) => {
    const cut = accessCut(e, events.slice(0, i));
    return h('li', { class: `event ${e.type.startsWith(SCIM) ? 'from-idp' : 'product'}` },
      h('p', { class: 'event-when' }, timeEl(e.time)),
      h('p', { class: 'event-what' }, describe(e)),
      cut ? h('p', { class: 'event-cut' }, cut) : null,
      who(e));
  }));
}

const PROFILE_FIELDS = [
  ['userName', (u) => u.userName],
  ['Display name', (u) => u.displayName],
  ['Name', (u) => u.name && (u.name.formatted || [u.name.givenName, u.name.familyName].filter(Boolean).join(' '))],
  ['Emails', (u) => (u.emails || []).map((m) => m.value).join(', ')],
  ['Title', (u) => u.title],
  ['Department', (u) => (u[ENTERPRISE] || {}).department],
  ['Manager', (u) => { const m = (u[ENTERPRISE] || {}).manager; return m && (m.displayName || m.value); }],
  ['Employee number', (u) => (u[ENTERPRISE] || {}).employeeNumber],
  ['Active in the identity provider', (u) => (u.active === false ? 'no' : 'yes')],
  ['External id', (u) => u.externalId],
];
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

function scimAttributes(a) {
  if (a.user === undefined) {
    return h('p', { class: 'muted' }, `SCIM user ${a.scimId}; groups: `, groupNames(a.groups));
  }
  if (a.user === null) return h('p', { class: 'muted' }, 'The SCIM user was deleted; the account is kept for the audit trail.');
  const rows = PROFILE_FIELDS.map(([label, pick]) => [label, pick(a.user)]).filter(([, v]) => v);
  rows.push(['Groups', groupNames(a.groups)]);
  return h('dl', { class: 'pairs' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : v)]));
}

export async function renderDetail(view, { id }) {
  let a;
  try {
    a = await get(`accounts/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    replace(view, h('h1', {}, 'Account not found'),
      h('p', {}, 'No account of this tenant has this id. Find it in ', h('a', { href: '/admin/accounts' }, 'Accounts'), '.'));
    return 'Account not found';
  }
  const events = await getAll(`accounts/${encodeURIComponent(id)}/timeline`, 10000);
  const removal = a.removalPending;
  replace(view,
    h('p', { class: 'crumbs' }, h('a', { href: '/admin/accounts' }, 'Accounts'), ' / ', a.userName),
    h('h1', {}, personName(a)),
    h('dl', { class: 'pairs summary' },
      h('dt', {}, 'userName'), h('dd', {}, a.userName),
      h('dt', {}, 'State'), h('dd', {}, stateBadge(a)),
      removal ? [h('dt', {}, 'Removal pending'), h('dd', {}, `${removal.reason} in the identity provider, since `, timeEl(removal.since), ` (${ago(removal.since)}); `,
        h('a', { href: '/admin/removals' }, 'review it in Pending removals'))] : null,
      h('dt', {}, 'Created'), h('dd', {}, timeEl(a.created)),
      h('dt', {}, 'Last change'), h('dd', {}, timeEl(a.lastModified)),
      h('dt', {}, 'Account id'), h('dd', {}, h('code', {}, a.id))),
    h('section', { 'aria-labelledby': 'roles-heading', class: 'card' },
      h('h2', { id: 'roles-heading' }, 'Roles and entitlements'),
      a.state === 'active' ? null : h('p', { class: 'hint' }, 'Only an active account holds roles.'),
      h('p', {}, 'Roles: ', roleNames(a.roles)),
      entitlementList(a.entitlements)),
    h('section', { 'aria-labelledby': 'scim-heading', class: 'card' },
      h('h2', { id: 'scim-heading' }, 'SCIM attributes'),
      scimAttributes(a)),
    h('section', { 'aria-labelledby': 'timeline-heading', class: 'card' },
      h('h2', { id: 'timeline-heading' }, 'Timeline'),
      h('p', { class: 'hint' }, `Every change, oldest first, times in UTC. ${events.length} ${events.length === 1 ? 'event' : 'events'}.`),
      timeline(events)));
  return a.userName;
}
