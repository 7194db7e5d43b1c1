// The admin console: a small single-page app over /api/v1 (docs/api-v1.md). Real links
// navigate (history API; every page has its own URL and survives a reload); after a
// navigation focus moves to the new page's heading, so a screen reader reads where it is.

import { currentSession, signOut, whenSignedOut, ApiError } from './api.js';
import { h, replace, announce, clearStatus } from './dom.js';
import * as signin from './signin.js';
import * as review from './review.js';
import * as removals from './removals.js';
import * as accounts from './accounts.js';
import * as policies from './policies.js';
import * as roles from './roles.js';
import * as webhooks from './webhooks.js';

const ROUTES = [
  { path: /^\/admin\/review$/, page: review },
  { path: /^\/admin\/removals$/, page: removals },
  { path: /^\/admin\/accounts$/, page: accounts },
  { path: /^\/admin\/accounts\/([^/]+)$/, page: accounts, detail: true },
  { path: /^\/admin\/policies$/, page: policies },
  { path: /^\/admin\/roles$/, page: roles },
  { path: /^\/admin\/webhooks$/, page: webhooks },
];

const HOME = '/admin/review';
const main = () => document.getElementById('main');
let session = null;
let rendering = 0;
/** Said on the sign-in page after a session ended. */
let signedOutNotice = null;

/** Goes to `path` (an /admin URL) and renders it. */
export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) window.history.replaceState({}, '', path);
  else window.history.pushState({}, '', path);
  render({ focus: true });
}

function showShell(on) {
  document.getElementById('nav').hidden = !on;
  document.getElementById('who').hidden = !on;
  if (on) document.getElementById('tenant').textContent = session.tenant;
}

function markCurrent(pathname) {
  for (const a of document.querySelectorAll('#nav a')) {
    const here = pathname === a.pathname || pathname.startsWith(`${a.pathname}/`);
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Moves focus to the page's main heading (made focusable for it). */
function focusHeading() {
  const h1 = main().querySelector('h1');
  if (!h1) return;
  h1.setAttribute('tabindex', '-1');
  h1.focus();
}

async function render({ focus = false } = {}) {
  const ticket = ++rendering;
  clearStatus();
  const root = main();
  let path = window.location.pathname.replace(/\/+$/, '');
  if (!session) {
    showShell(false);
    document.title = 'Sign in · Scimitar admin';
    signin.render(root, { onSignedIn, notice: signedOutNotice });
    signedOutNotice = null;
    if (focus) focusHeading();
    return;
  }
  showShell(true);
  if (path === '/admin' || path === '') {
    path = HOME;
    window.history.replaceState({}, '', path);
  }
  markCurrent(path);
  const route = ROUTES.map((r) => ({ r, m: path.match(r.path) })).find((x) => x.m);
  root.setAttribute('aria-busy', 'true');
  try {
    if (!route) {
      document.title = 'Page not found · Scimitar admin';
      replace(root, h('h1', {}, 'Page not found'),
        h('p', {}, 'There is no console page at this address. Use the navigation above, or go to the ',
          h('a', { href: HOME }, 'review queue'), '.'));
    } else {
      const { r, m } = route;
      const view = h('div', { class: 'page' });
      const title = await (r.detail
        ? r.page.renderDetail(view, { id: decodeURIComponent(m[1]), navigate })
        : r.page.render(view, { navigate }));
      if (ticket !== rendering) return; // a newer navigation won
      document.title = `${title} · Scimitar admin`;
      replace(root, view);
    }
  } catch (e) {
    if (ticket !== rendering) return;
    if (e instanceof ApiError && e.status === 401) return; // whenSignedOut re-renders
    replace(root, h('h1', {}, 'Something went wrong'),
      h('p', { class: 'error' }, e.message),
      h('p', {}, h('button', { type: 'button', on: { click: () => render({ focus: true }) } }, 'Try again')));
  } finally {
    if (ticket === rendering) root.removeAttribute('aria-busy');
  }
  if (focus && ticket === rendering) focusHeading();
}

function onSignedIn(s) {
  session = s;
  const path = window.location.pathname.replace(/\/+$/, '');
  navigate(path === '/admin' ? HOME : path, { replaceState: true });
  announce(`Signed in to tenant ${s.tenant}.`);
}

whenSignedOut(() => {
  if (!session) return;
  session = null;
  signedOutNotice = 'Your session has ended (it expired, was signed out elsewhere, or its credential was revoked). Sign in again.';
  render({ focus: true });
});

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, window.location.href);
  if (url.origin !== window.location.origin || !url.pathname.startsWith('/admin')) return;
  if (url.hash && url.pathname === window.location.pathname) return; // in-page link (skip link)
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => render({ focus: true }));

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await signOut();
  } catch (e) {
    // The session may already be gone; the page signs out either way.
  }
  session = null;
  signedOutNotice = 'You are signed out.';
  navigate('/admin', { replaceState: true });
  announce('Signed out.');
});

async function start() {
  try {
    session = await currentSession();
  } catch (e) {
    session = null;
    signedOutNotice = e.message;
  }
  render();
}

start();
