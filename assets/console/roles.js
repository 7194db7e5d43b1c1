// Roles and rules (Ramp): a role is a name and typed entitlements (card.monthly_limit = 5000);
// a rule grants a role to the users a SCIM filter matches, or to the members of a SCIM group.
// Changing either recomputes every active account at once.

import { get, getAll, post, put, del, ApiError } from './api.js';
import { h, replace, table, empty, entitlementList, field, fieldError, announce, uid } from './dom.js';

const TYPES = ['number', 'boolean', 'string'];

export async function render(view) {
  const state = { roles: [], rules: [], groups: null };
  const rolesBox = h('div');
  const rulesBox = h('div');
  const roleFormBox = h('div');
  const ruleFormBox = h('div');

  const reload = async () => {
    const [roles, rules, groups] = await Promise.all([get('roles'), get('rules'), getAll('groups', 1000)]);
    state.groups = groups;
    const key = (list) => list.map((r) => `${r.id}:${r.name}`).join(',');
    const rolesChanged = key(roles.items) !== key(state.roles);
    state.roles = roles.items;
    state.rules = rules.items;
    drawRoles();
    drawRules();
    // The rule form offers the roles: redrawn when they change (a new role can be granted at once).
    if (rolesChanged) ruleForm();
  };

  const roleName = (id) => (state.roles.find((r) => r.id === id) || { name: id }).name;
  const groupName = (id) => {
    const g = state.groups && state.groups.find((x) => x.id === id);
    return g ? g.displayName : id;
  };
  const ruleText = (r) => (r.filter
    ? h('span', {}, 'users matching ', h('code', {}, r.filter))
    : h('span', {}, 'members of the group ', h('strong', {}, groupName(r.group))));

  function drawRoles() {
    if (!state.roles.length) {
      replace(rolesBox, empty('No roles yet.', 'Create one below: a name and the entitlements it gives, for example ',
        h('code', {}, 'card.monthly_limit = 5000'), '. Then add a rule that grants it.'));
      return;
    }
    replace(rolesBox, table('Roles', [
      { label: 'Role', header: true },
      { label: 'Entitlements' },
      { label: 'Granted by' },
      { label: 'Actions', class: 'actions-col' },
    ], state.roles.map((role) => {
      const rules = state.rules.filter((r) => r.role === role.id);
      return [
        role.name,
        entitlementList(role.entitlements),
        rules.length ? h('ul', { class: 'plain' }, rules.map((r) => h('li', {}, ruleText(r)))) : h('span', { class: 'muted' }, 'no rule yet'),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit role ${role.name}`, on: { click: () => roleForm(role) } }, 'Edit'),
          h('button', {
            type: 'button',
            class: 'danger',
            'aria-label': `Delete role ${role.name}`,
            on: {
              click: async () => {
                if (!window.confirm(`Delete the role ${role.name} and its ${rules.length} rules? Accounts lose what it gave them at once.`)) return;
                try {
                  await del(`roles/${encodeURIComponent(role.id)}`);
                  await reload();
                  announce(`Role ${role.name} deleted.`);
                  document.getElementById('roles-heading').focus();
                } catch (e) {
                  announce(`The role was not deleted: ${e.message}`, 'error');
                }
              },
            },
          }, 'Delete')),
      ];
    })));
  }

  function drawRules() {
    if (!state.rules.length) {
      replace(rulesBox, empty('No rules yet.', state.roles.length
        ? 'Add one below to grant a role to the users a SCIM filter matches, or to the members of a group.'
        : 'Create a role first; a rule grants it.'));
      return;
    }
    replace(rulesBox, table('Rules', [
      { label: 'Role', header: true },
      { label: 'Grants it to' },
      { label: 'Actions', class: 'actions-col' },
    ], state.rules.map((r) => [
      roleName(r.role),
      ruleText(r),
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        class: 'secondary',
        'aria-label': `Edit the rule granting ${roleName(r.role)} to ${r.filter ? 'users matching a filter' : `members of ${groupName(r.group)}`}`,
        on: { click: () => ruleForm(r) },
      }, 'Edit'), h('button', {
        type: 'button',
        class: 'danger',
        'aria-label': `Delete the rule granting ${roleName(r.role)} to ${r.filter ? 'users matching a filter' : `members of ${groupName(r.group)}`}`,
        on: {
          click: async () => {
            if (!window.confirm(`Delete this rule? Accounts it matched lose ${roleName(r.role)} unless another rule grants it.`)) return;
            try {
              await del(`rules/${encodeURIComponent(r.id)}`);
              await reload();
              announce('Rule deleted.');
              document.getElementById('rules-heading').focus();
            } catch (e) {
              announce(`The rule was not deleted: ${e.message}`, 'error');
            }
          },
        },
      }, 'Delete')),
    ])));
  }

  // -- the role form: new, or editing one
  function roleForm(role) {
    const editing = Boolean(role);
    const name = h('input', { type: 'text', autocomplete: 'off', required: true, props: { value: editing ? role.name : '' } });
    const rowsBox = h('div', { class: 'ent-rows' });
    const rows = [];
    const addRow = (key = '', value = '') => {
      const n = rows.length + 1;
      const type = typeof value === 'boolean' ? 'boolean' : typeof value === 'number' ? 'number' : (key ? 'string' : 'number');
      const k = h('input', { type: 'text', autocomplete: 'off', props: { value: key } });
      const t = h('select', {}, TYPES.map((x) => h('option', { value: x, selected: x === type }, x)));
      const v = h('input', { type: 'text', autocomplete: 'off', props: { value: value === '' ? '' : String(value) } });
      const row = { k, t, v };
      const el = h('fieldset', { class: 'ent-row' },
        h('legend', { class: 'visually-hidden' }, `Entitlement ${n}`),
        field(`Key`, k), field('Type', t), field('Value', v, 'number, true/false, or text'),
        h('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Remove entitlement ${n}`,
          on: {
            click: () => {
              rows.splice(rows.indexOf(row), 1);
              el.remove();
              addButton.focus();
            },
          },
        }, 'Remove'));
      row.el = el;
      rows.push(row);
      rowsBox.append(el);
      return row;
    };
    const addButton = h('button', { type: 'button', class: 'secondary', on: { click: () => addRow().k.focus() } }, 'Add entitlement');
    for (const [k, v] of Object.entries(editing ? role.entitlements : {})) addRow(k, v);
    if (!rows.length) addRow();
    const formError = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save role' : 'Create role');
    const form = h('form', { class: 'stack card', 'aria-labelledby': 'role-form-heading' },
      h('h3', { id: 'role-form-heading', tabindex: '-1' }, editing ? `Edit role ${role.name}` : 'New role'),
      field('Role name', name, 'Unique in the tenant, e.g. finance-manager.'),
      h('fieldset', {}, h('legend', {}, 'Entitlements'), rowsBox, addButton),
      formError,
      h('div', { class: 'toolbar' }, submit,
        editing ? h('button', { type: 'button', class: 'secondary', on: { click: () => { roleForm(null); } } }, 'Cancel') : null));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      formError.textContent = '';
      fieldError(name, null);
      const entitlements = {};
      for (const r of rows) {
        fieldError(r.k, null);
        fieldError(r.v, null);
        const key = r.k.value.trim();
        const raw = r.v.value.trim();
        if (!key && !raw) continue;
        if (!key) { fieldError(r.k, 'Give the entitlement a key.'); r.k.focus(); return; }
        let value = raw;
        if (r.t.value === 'number') {
          value = Number(raw);
          if (raw === '' || !Number.isFinite(value)) { fieldError(r.v, 'Enter a number, e.g. 5000.'); r.v.focus(); return; }
        } else if (r.t.value === 'boolean') {
          if (raw !== 'true' && raw !== 'false') { fieldError(r.v, 'Enter true or false.'); r.v.focus(); return; }
          value = raw === 'true';
        }
        entitlements[key] = value;
      }
      if (!name.value.trim()) { fieldError(name, 'Give the role a name.'); name.focus(); return; }
      submit.disabled = true;
      try {
        const body = { name: name.value.trim(), entitlements };
        const saved = editing
          ? await put(`roles/${encodeURIComponent(role.id)}`, body)
          : await post('roles', body);
        await reload();
        roleForm(null);
        announce(`Role ${saved.name} ${editing ? 'saved' : 'created'}. Accounts were recomputed.`);
        document.getElementById('roles-heading').focus();
      } catch (e) {
        if (e instanceof ApiError && e.status === 409) fieldError(name, e.message);
        else formError.textContent = e.message;
        (e.status === 409 ? name : submit).focus();
      } finally {
        submit.disabled = false;
      }
    });
    replace(roleFormBox, form);
    if (editing) document.getElementById('role-form-heading').focus();
  }

  // -- the rule form
  /** The rule form: a new rule, or `rule` being edited. */
  function ruleForm(rule = null) {
    if (!state.roles.length) {
      replace(ruleFormBox);
      return;
    }
    const editing = Boolean(rule);
    const role = h('select', { required: true }, state.roles.map((r) => h('option', { value: r.id, selected: editing && r.id === rule.role }, r.name)));
    const kindName = uid('kind');
    const byGroupFirst = editing && Boolean(rule.group);
    const byFilter = h('input', { type: 'radio', name: kindName, value: 'filter', id: `${kindName}-filter`, props: { checked: !byGroupFirst } });
    const byGroup = h('input', { type: 'radio', name: kindName, value: 'group', id: `${kindName}-group`, props: { checked: byGroupFirst } });
    const filter = h('textarea', { rows: '3', spellcheck: 'false', autocomplete: 'off' });
    filter.value = editing && rule.filter ? rule.filter : '';
    const group = h('select', {},
      h('option', { value: '' }, state.groups.length ? 'Choose a group' : 'No groups yet'),
      state.groups.map((g) => h('option', { value: g.id, selected: editing && g.id === rule.group }, `${g.displayName || g.id} (${g.users} ${g.users === 1 ? 'user' : 'users'})`)));
    const filterField = field('SCIM filter', filter,
      h('span', {}, 'The query language of ', h('code', {}, '/scim/v2/Users?filter='), ', e.g. ',
        h('code', {}, 'title co "Manager" and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Finance"')));
    const groupField = field('Group', group, state.groups.length ? null : 'Groups appear when your identity provider pushes them.');
    groupField.hidden = !byGroupFirst;
    // Where the filter went wrong, drawn under it (the message says the same in words).
    const caret = h('pre', { class: 'caret', 'aria-hidden': 'true', hidden: true });
    filterField.append(caret);
    const preview = h('p', { class: 'preview', 'aria-live': 'polite' });
    const syncKind = () => {
      filterField.hidden = !byFilter.checked;
      groupField.hidden = byFilter.checked;
      preview.textContent = '';
    };
    const showPosition = (position) => {
      caret.hidden = position === null || position === undefined;
      if (!caret.hidden) caret.textContent = `${filter.value}\n${' '.repeat(position)}^`;
    };
    const body = () => (byFilter.checked ? { filter: filter.value.trim() } : { group: group.value });
    const runPreview = async () => {
      fieldError(filter, null);
      fieldError(group, null);
      showPosition(null);
      const b = body();
      if (!(b.filter || b.group)) {
        preview.textContent = '';
        return;
      }
      try {
        const p = await post('rules/preview', b);
        if (!p.valid) {
          fieldError(filter, p.detail);
          showPosition(p.position);
          preview.dataset.kind = 'error';
          preview.textContent = 'The filter is not valid; nothing was matched.';
          return;
        }
        preview.dataset.kind = 'ok';
        const more = p.matches > p.sample.length ? ', …' : '';
        preview.textContent = `Would match ${p.matches} ${p.matches === 1 ? 'account' : 'accounts'} now${p.sample.length ? `: ${p.sample.join(', ')}${more}` : ''}.`;
      } catch (e) {
        preview.dataset.kind = 'error';
        preview.textContent = `No preview: ${e.message}`;
      }
    };
    filter.addEventListener('change', runPreview);
    group.addEventListener('change', runPreview);
    byFilter.addEventListener('change', syncKind);
    byGroup.addEventListener('change', syncKind);
    const formError = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save rule' : 'Add rule');
    const form = h('form', { class: 'stack card', 'aria-labelledby': 'rule-form-heading' },
      h('h3', { id: 'rule-form-heading', tabindex: '-1' }, editing ? `Edit the rule granting ${roleName(rule.role)}` : 'New rule'),
      field('Role to grant', role),
      h('fieldset', { class: 'choices' }, h('legend', {}, 'Grant it to'),
        h('div', { class: 'choice' }, byFilter, h('label', { for: byFilter.id }, 'Users matching a SCIM filter')),
        h('div', { class: 'choice' }, byGroup, h('label', { for: byGroup.id }, 'Members of a SCIM group'))),
      filterField, groupField, preview, formError,
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', class: 'secondary', on: { click: runPreview } }, 'Preview matches'),
        submit,
        editing ? h('button', { type: 'button', class: 'secondary', on: { click: () => ruleForm() } }, 'Cancel') : null));
    filterField.hidden = byGroupFirst;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      formError.textContent = '';
      showPosition(null);
      fieldError(filter, null);
      fieldError(group, null);
      const body = { role: role.value };
      if (byFilter.checked) {
        if (!filter.value.trim()) { fieldError(filter, 'Write a filter, e.g. title co "Manager".'); filter.focus(); return; }
        body.filter = filter.value.trim();
      } else {
        if (!group.value.trim()) { fieldError(group, 'Choose a group.'); group.focus(); return; }
        body.group = group.value.trim();
      }
      submit.disabled = true;
      try {
        if (editing) await put(`rules/${encodeURIComponent(rule.id)}`, body);
        else await post('rules', body);
        await reload();
        ruleForm();
        announce(`Rule ${editing ? 'saved' : 'added'}: ${roleName(body.role)} is granted to ${body.filter ? 'users matching the filter' : `members of ${groupName(body.group)}`}. Accounts were recomputed.`);
        document.getElementById('rules-heading').focus();
      } catch (e) {
        const target = byFilter.checked ? filter : group;
        if (e instanceof ApiError && (e.status === 400 || e.status === 404)) {
          fieldError(target, e.message);
          const at = /at position (\d+)/.exec(e.message);
          if (target === filter && at) showPosition(Number(at[1]));
          target.focus();
        } else {
          formError.textContent = e.message;
        }
      } finally {
        submit.disabled = false;
      }
    });
    replace(ruleFormBox, form);
    if (editing) document.getElementById('rule-form-heading').focus();
  }

  await reload();
  roleForm(null);
  replace(view,
    h('h1', {}, 'Roles and rules'),
    h('p', { class: 'lede' }, 'A role gives entitlements; a rule grants a role to users. Only active accounts hold roles. When two roles give the same entitlement, the highest number wins, true wins over false, and for text the role whose name sorts first wins.'),
    h('section', { 'aria-labelledby': 'roles-heading' },
      h('h2', { id: 'roles-heading', tabindex: '-1' }, 'Roles'),
      rolesBox, roleFormBox),
    h('section', { 'aria-labelledby': 'rules-heading' },
      h('h2', { id: 'rules-heading', tabindex: '-1' }, 'Rules'),
      rulesBox, ruleFormBox));
  return 'Roles and rules';
}
