// The patient app: boot, routes (in the URL fragment, so an invitation code never reaches the
// server's logs), the "Get help now" dialog on every screen, the outbox of check-ins and help
// requests made offline, and Web Push.

import * as api from './api.js';
import { kvGet, kvSet, outboxAll, outboxPut, outboxDelete } from './store.js';
import { h, say, crisisPanel, FALLBACK_RESOURCES, joinView, signInView, consentView, homeView, historyView, sessionsView, settingsView } from './views.js';
import { renderCheckIn } from './checkin.js';

const main = document.getElementById('main');
const tabs = document.getElementById('tabs');
let registration = null;

// ---- Cached reads ----------------------------------------------------------------------------

/** A GET that also keeps its answer in IndexedDB, and answers from there when offline. */
async function get(path) {
  const key = `get:${path}`;
  try {
    const data = await api.call('GET', path);
    if (['/v1/me', '/v1/instruments', '/v1/me/crisis-resources', '/v1/me/prompts'].includes(path)) await kvSet(key, data);
    return data;
  } catch (error) {
    if (error instanceof api.Offline) {
      const kept = await kvGet(key);
      if (kept) return kept;
    }
    throw error;
  }
}

async function instruments() {
  return (await get('/v1/instruments')).items;
}

async function resources() {
  try { return await get('/v1/me/crisis-resources'); } catch (_) {
    return (await kvGet('get:/v1/me/crisis-resources')) || FALLBACK_RESOURCES;
  }
}

/** Kept resources at once (no network wait): what a person in crisis sees first. */
async function resourcesNow() {
  return (await kvGet('get:/v1/me/crisis-resources').catch(() => null)) || FALLBACK_RESOURCES;
}

/** After sign-in or enrolment: fetch what must work offline. */
async function signedIn() {
  await Promise.all([get('/v1/me/crisis-resources'), get('/v1/instruments'), get('/v1/me'), get('/v1/me/prompts')]).catch(() => {});
  flush();
}

// ---- Outbox ----------------------------------------------------------------------------------

async function queue(item) {
  await outboxPut({ ...item, queued_at: new Date().toISOString(), state: 'waiting' });
  try {
    if (registration && registration.sync) await registration.sync.register('companion-outbox');
  } catch (_) { /* no Background Sync: sent on open and on the online event */ }
}

let flushing = null;
/** Sends every queued item once (the server de-duplicates by id). */
function flush() {
  if (flushing) return flushing;
  const run = async () => {
    const lock = navigator.locks ? (work) => navigator.locks.request('companion-outbox', work) : (work) => work();
    await lock(async () => {
      for (const item of await outboxAll()) {
        if (item.state === 'refused') continue;
        try {
          const answer = await api.call('POST', item.path, item.body);
          await outboxDelete(item.id);
          sent(item, answer);
        } catch (error) {
          if (error instanceof api.ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
            await outboxPut({ ...item, state: 'refused', problem: error.message });
          } else {
            return;
          }
        }
      }
    });
  };
  flushing = run().catch(() => {}).finally(() => { flushing = null; });
  return flushing;
}

function sent(item, answer) {
  const safety = answer && answer.safety;
  if (item.kind === 'help_request') {
    say(`Your request for help was sent. ${safety ? safety.message : ''}`);
  } else {
    say(`Your ${item.label || 'check-in'} was sent.${safety ? ` ${safety.message}` : ''}`);
  }
  if (location.hash === '#/home' || location.hash === '') route();
}

/** Sends a check-in now, or keeps it to send when online. */
async function submitCheckIn(body, label) {
  if (navigator.onLine !== false) {
    try {
      return { sent: await api.call('POST', '/v1/check-ins', body) };
    } catch (error) {
      if (!(error instanceof api.Offline)) throw error;
    }
  }
  await queue({ id: body.id, kind: 'check_in', path: '/v1/check-ins', body, label });
  return { queued: true };
}

// ---- Get help now ----------------------------------------------------------------------------

const dialog = document.getElementById('help-dialog');
const helpResult = document.getElementById('help-result');
const helpTell = document.getElementById('help-tell');

async function openHelp() {
  document.getElementById('help-resources').replaceChildren(crisisPanel(await resourcesNow()));
  helpResult.replaceChildren();
  const session = await api.hasSession();
  document.getElementById('help-care-team').hidden = !session;
  helpTell.disabled = false;
  if (!dialog.open) dialog.showModal();
  // Fresher resources when online; the kept ones were shown first.
  resources().then((r) => document.getElementById('help-resources').replaceChildren(crisisPanel(r))).catch(() => {});
}

async function tellCareTeam() {
  helpTell.disabled = true;
  const body = { id: crypto.randomUUID() };
  let answer = null;
  try {
    if (navigator.onLine === false) throw new api.Offline();
    answer = await api.call('POST', '/v1/me/help-requests', body);
  } catch (error) {
    if (!(error instanceof api.Offline)) {
      helpResult.replaceChildren(h('p', { class: 'notice' }, `Your request could not be sent: ${error.message} If you are in danger, call one of the numbers above now.`));
      helpTell.disabled = false;
      return;
    }
    await queue({ id: body.id, kind: 'help_request', path: '/v1/me/help-requests', body, label: 'Request for help' });
    helpResult.replaceChildren(h('p', { class: 'notice', 'data-care-team': 'queued' },
      'This phone is offline, so your care team has not been told yet. We will send your request as soon as you are online. If you are in danger, call one of the numbers above now.'));
    return;
  }
  const safety = answer.safety;
  helpResult.replaceChildren(h('p', { class: `notice${safety.care_team === 'reached' ? ' reached' : ''}`, 'data-care-team': safety.care_team }, safety.message));
}

document.getElementById('help-now').addEventListener('click', openHelp);
helpTell.addEventListener('click', tellCareTeam);
document.getElementById('help-close').addEventListener('click', () => dialog.close());

// ---- Web Push --------------------------------------------------------------------------------

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

async function pushSwitch() {
  const note = h('p', { class: 'hint', id: 'push-note', role: 'status' });
  const input = h('input', { type: 'checkbox', id: 'push-switch', role: 'switch', 'aria-describedby': 'push-note' });
  const box = h('div', {}, h('div', { class: 'switch' }, input, h('label', { for: 'push-switch' }, 'Remind me to check in')), note);
  const supported = registration && 'PushManager' in self && 'Notification' in self;
  let key = null;
  try { key = supported ? await api.publicGet('/v1/push/web-push-key') : null; } catch (_) { key = null; }
  if (!supported || !key) {
    input.disabled = true;
    note.textContent = supported ? 'Notifications are not available from this server yet.' : 'This browser cannot show notifications from the app (on an iPhone, add the app to the home screen first).';
    return box;
  }
  const current = await registration.pushManager.getSubscription();
  input.checked = Boolean(current) && Notification.permission === 'granted';
  note.textContent = 'Reminders say only "Time for your check-in", never anything about your health.';
  input.addEventListener('change', async () => {
    try {
      if (input.checked) {
        if ((await Notification.requestPermission()) !== 'granted') {
          input.checked = false;
          note.textContent = 'Notifications are blocked for this app in the browser settings.';
          return;
        }
        const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key.public_key) });
        const json = subscription.toJSON();
        const device = await api.call('POST', '/v1/devices', { platform: 'web', endpoint: json.endpoint, keys: json.keys, locale: navigator.language });
        await kvSet('web_push_device', device.id);
        note.textContent = 'Notifications are on.';
      } else {
        const subscription = await registration.pushManager.getSubscription();
        if (subscription) await subscription.unsubscribe();
        const id = await kvGet('web_push_device');
        if (id) await api.call('DELETE', `/v1/devices/${encodeURIComponent(id)}`).catch(() => {});
        note.textContent = 'Notifications are off.';
      }
    } catch (error) {
      input.checked = !input.checked;
      note.textContent = `Could not change notifications: ${error.message}`;
    }
  });
  return box;
}

// ---- Routes ----------------------------------------------------------------------------------

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

async function signOut() {
  await api.signOut();
  signedOut('You are signed out.');
}

function signedOut(message) {
  say(message);
  go('#/sign-in');
}

const ctx = { api, get, go, instruments, signedIn, signOut, signedOut, outbox: outboxAll, pushSwitch };

async function checkInRoute(prompt, key) {
  const all = await instruments();
  let promptId = null;
  if (prompt) {
    const prompts = await get('/v1/me/prompts');
    const found = prompts.items.find((p) => p.id === prompt);
    if (!found || !['sent', 'reminded', 'scheduled'].includes(found.status)) {
      main.replaceChildren(h('h1', { tabindex: '-1' }, 'Check-in'), h('p', {}, 'This check-in is not open any more.'),
        h('a', { class: 'button primary', href: '#/home' }, 'Back to home'));
      return;
    }
    promptId = found.id;
    key = found.instrument;
  }
  const instrument = all.find((i) => i.key === key);
  if (!instrument) { main.replaceChildren(h('h1', { tabindex: '-1' }, 'Check-in'), h('p', {}, 'This check-in is not available.')); return; }
  renderCheckIn(main, instrument, { promptId, submit: submitCheckIn, resources: resourcesNow });
}

let routing = 0;
async function route() {
  const ticket = ++routing;
  const hash = location.hash || '#/home';
  const [, name, arg] = hash.match(/^#\/([a-z-]+)(?:\/(.+))?$/) || [];
  const session = await api.hasSession();
  const open = ['join', 'sign-in'];
  tabs.hidden = !session || open.includes(name);
  for (const a of tabs.querySelectorAll('a')) {
    if (a.dataset.tab === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!session && !open.includes(name)) { go('#/sign-in'); return; }
  document.body.dataset.view = 'loading';
  try {
    switch (name) {
      case 'join': joinView(main, ctx, decodeURIComponent(arg || '')); break;
      case 'sign-in': signInView(main, ctx); break;
      case 'consent': await consentView(main, ctx); break;
      case 'check-in': await checkInRoute(decodeURIComponent(arg || ''), null); break;
      case 'new': await checkInRoute(null, decodeURIComponent(arg || '')); break;
      case 'history': await historyView(main, ctx); break;
      case 'sessions': await sessionsView(main, ctx); break;
      case 'settings': await settingsView(main, ctx); break;
      default: await homeView(main, ctx); name === 'home' || history.replaceState(null, '', '#/home');
    }
  } catch (error) {
    if (ticket !== routing) return;
    if (error instanceof api.SignedOut) { signedOut('Please sign in again.'); return; }
    const text = error instanceof api.Offline ? 'You are offline, and this page is not saved on this phone yet.' : error.message;
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p', {}, text), h('a', { class: 'button primary', href: '#/home' }, 'Back to home'));
  }
  if (ticket !== routing) return;
  const view = name && ['join', 'sign-in', 'consent', 'check-in', 'new', 'history', 'sessions', 'settings'].includes(name) ? name : 'home';
  document.title = `${(main.querySelector('h1') || {}).textContent || 'Companion'} · Companion`;
  document.body.dataset.view = view;
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== document.getElementById('help-now')) heading.focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => {
  // A message said just before moving on (within say()'s short delay) still shows.
  document.getElementById('status').textContent = '';
  route();
});
window.addEventListener('online', () => { say('You are online again.'); flush(); });
window.addEventListener('offline', () => say('You are offline. Check-ins are kept on this phone and sent later.'));

async function boot() {
  if ('serviceWorker' in navigator) {
    try {
      registration = await navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' });
      navigator.serviceWorker.addEventListener('message', (event) => {
        const message = event.data || {};
        if (message.type === 'open') {
          const target = new URL(message.url, location.origin);
          if (target.origin === location.origin && target.pathname.startsWith('/app/')) go(target.hash || '#/home');
        } else if (message.type === 'sent') {
          sent(message.item, message.answer);
        }
      });
    } catch (_) { registration = null; }
  }
  await route();
  if (await api.hasSession()) {
    resources().catch(() => {});
    flush();
  }
}

boot();
