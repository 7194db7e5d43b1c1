// Building the page without innerHTML (every value from the API becomes a text node, so
// nothing it says can become markup), formatting times, and the status announcer.

/** Creates an element. `attrs`: attributes; `class`; `on` ({event: handler});
 * `props` (DOM properties such as `checked`). A false or null attribute is left out;
 * children may be strings, nodes, arrays, or null/false (skipped). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === 'props') {
      Object.assign(el, value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
/** A fresh element id with a readable prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

const pad = (n) => String(n).padStart(2, '0');

/** `2026-12-03 09:14:03 UTC`: the server keeps UTC, and so does the console. */
export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** The clock time alone: `09:14:03`. */
export function clockTime(iso) {
  const d = new Date(iso);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** A `<time>` element showing `formatTime`. */
export function timeEl(iso) {
  return h('time', { datetime: iso }, formatTime(iso));
}

/** How long ago, in words: `3 min ago`. */
export function ago(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  return `${duration(s)} ago`;
}

/** A duration in seconds, in words: `45 s`, `3 min`, `2 h 5 min`, `4 days`. */
export function duration(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  const d = Math.floor(s / 86400);
  return `${d} ${d === 1 ? 'day' : 'days'}`;
}

/** Says something in the status region (polite: read after what the user is doing). The
 * region is emptied first so the same message twice is announced twice. */
export function announce(message, kind = 'info') {
  const region = document.getElementById('status');
  if (!region) return;
  region.replaceChildren();
  region.dataset.kind = kind;
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** Empties the status region (a new page or request: the last message no longer holds). */
export function clearStatus() {
  const region = document.getElementById('status');
  if (region) region.replaceChildren();
}

/** A value for a table cell or list: entitlements and the like. */
export function show(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The entitlements of a role or account as a definition list (or a dash). */
export function entitlementList(ents) {
  const keys = Object.keys(ents || {}).sort();
  if (!keys.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'plain ents' }, keys.map((k) => h('li', {}, h('code', {}, k), ' = ', h('strong', {}, show(ents[k])))));
}

/** Role names as a comma list (or a dash). */
export function roleNames(roles) {
  if (!roles || !roles.length) return h('span', { class: 'muted' }, 'none');
  return roles.map((r) => r.name).join(', ');
}

/** A table whose rows become labelled cards on a narrow screen (`data-label`). */
export function table(caption, columns, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) => {
        const col = columns[i];
        return h(col.header ? 'th' : 'td', {
          'data-label': typeof col.label === 'string' ? col.label : col.name,
          class: col.class,
          scope: col.header ? 'row' : null,
        }, cell);
      }))))));
}

/** An empty state: what there is not, and what to do next. */
export function empty(title, ...next) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), h('p', {}, ...next));
}

/** A form field: label, control, optional hint and the place its error goes. */
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  const parts = [h('label', { for: id }, label)];
  const described = [];
  if (hint) {
    const hid = `${id}-hint`;
    parts.push(h('p', { class: 'hint', id: hid }, hint));
    described.push(hid);
  }
  const eid = `${id}-error`;
  const err = h('p', { class: 'field-error', id: eid, hidden: true });
  described.push(eid);
  control.setAttribute('aria-describedby', described.join(' '));
  parts.push(control, err);
  return h('div', { class: 'field' }, parts);
}

/** Shows (or, with no message, clears) a field's error and marks the control invalid. */
export function fieldError(control, message) {
  const err = document.getElementById(`${control.id}-error`);
  if (message) {
    control.setAttribute('aria-invalid', 'true');
    if (err) {
      err.textContent = message;
      err.hidden = false;
    }
  } else {
    control.removeAttribute('aria-invalid');
    if (err) {
      err.textContent = '';
      err.hidden = true;
    }
  }
}
