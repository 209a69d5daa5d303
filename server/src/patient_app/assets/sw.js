// The patient app's service worker (scope /app/). It keeps the app shell of this version, and
// the answers the app needs offline (instruments, prompts, crisis resources, ...): network
// first for those API reads, the cache when the network fails. It never caches or replays a
// POST itself except the app's own outbox (check-ins and help requests with their client ids,
// which the server de-duplicates), sent by Background Sync. Push messages carry no health
// information; a click opens (or focuses) the app at the payload's in-app URL.
'use strict';

const VERSION = '{{VERSION}}';
const SHELL = 'companion-shell-' + VERSION;
const API = 'companion-api';
const SHELL_FILES = ['/app/', '/app/manifest.webmanifest', {{ASSETS}}];
// API reads kept for offline use (exact paths; a query is part of the key).
const CACHED_READS = [
  '/v1/me', '/v1/instruments', '/v1/me/prompts', '/v1/me/crisis-resources',
  '/v1/me/sessions', '/v1/me/check-ins', '/v1/me/consent', '/v1/me/preferences',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(SHELL_FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('companion-shell-') && name !== SHELL) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

function offlineAnswer() {
  return new Response(JSON.stringify({ error: { code: 'offline', message: 'You are offline and this is not saved on this device.' } }),
    { status: 503, headers: { 'content-type': 'application/json' } });
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const cache = await caches.open(API);
      await cache.put(request.url, response.clone());
    }
    return response;
  } catch (_) {
    const cached = await caches.match(request.url, { cacheName: API, ignoreVary: true });
    return cached || offlineAnswer();
  }
}

async function shellFirst(request) {
  const cached = await caches.match(request, { cacheName: SHELL, ignoreVary: true });
  return cached || fetch(request);
}

// The page of this version from the cache at once (it names this version's files, which are
// cached beside it); the browser checks for a new service worker on every navigation, and a
// new version takes over with its own page.
async function page(request) {
  const cached = await caches.match('/app/', { cacheName: SHELL, ignoreVary: true });
  if (cached) return cached;
  try {
    return await fetch(request);
  } catch (_) {
    return Response.error();
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && url.pathname.startsWith('/app/')) {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith('/app/v/') || url.pathname === '/app/manifest.webmanifest') {
    event.respondWith(shellFirst(request));
  } else if (CACHED_READS.includes(url.pathname)) {
    event.respondWith(networkFirst(request));
  }
});

// ---- IndexedDB (the same database as store.js) --------------------------------------------

function db() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open('companion', 1);
    request.onupgradeneeded = () => {
      const d = request.result;
      if (!d.objectStoreNames.contains('kv')) d.createObjectStore('kv');
      if (!d.objectStoreNames.contains('outbox')) d.createObjectStore('outbox', { keyPath: 'id' });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function tx(store, mode, work) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    const r = work(t.objectStore(store));
    t.oncomplete = () => resolve(r && 'result' in r ? r.result : undefined);
    t.onerror = () => reject(t.error);
  });
}

function locked(name, work) {
  return self.navigator.locks ? self.navigator.locks.request(name, work) : work();
}

let access = null;
let accessUntil = 0;

async function token() {
  if (access && Date.now() < accessUntil) return access;
  return locked('companion-auth', async () => {
    const refresh = await tx('kv', 'readonly', (s) => s.get('refresh_token'));
    if (!refresh) return null;
    const response = await fetch('/v1/auth/refresh', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: refresh }),
    });
    if (!response.ok) return null;
    const pair = await response.json();
    await tx('kv', 'readwrite', (s) => { s.put(pair.refresh_token, 'refresh_token'); });
    access = pair.access_token;
    accessUntil = Date.now() + Math.max(0, pair.expires_in - 30) * 1000;
    return access;
  });
}

async function tell(message) {
  for (const client of await self.clients.matchAll({ type: 'window', includeUncontrolled: true })) {
    client.postMessage(message);
  }
}

/** Sends every queued item once. Throws when the network fails, so Background Sync retries. */
async function flushOutbox() {
  await locked('companion-outbox', async () => {
    const items = (await tx('outbox', 'readonly', (s) => s.getAll())) || [];
    items.sort((a, b) => (a.queued_at < b.queued_at ? -1 : 1));
    for (const item of items) {
      if (item.state === 'refused') continue;
      const bearer = await token();
      if (!bearer) return;
      const response = await fetch(item.path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + bearer },
        body: JSON.stringify(item.body),
      });
      const answer = await response.json().catch(() => null);
      if (response.ok) {
        await tx('outbox', 'readwrite', (s) => { s.delete(item.id); });
        await tell({ type: 'sent', item, answer });
      } else if (response.status === 401) {
        access = null;
        return;
      } else if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        item.state = 'refused';
        item.problem = (answer && answer.error && answer.error.message) || 'The server refused it.';
        await tx('outbox', 'readwrite', (s) => { s.put(item); });
        await tell({ type: 'refused', item });
      } else {
        throw new Error('try later');
      }
    }
  });
}

self.addEventListener('sync', (event) => {
  if (event.tag === 'companion-outbox') event.waitUntil(flushOutbox());
});

// ---- Push ---------------------------------------------------------------------------------

/** Only a URL inside the app is opened; anything else opens the app's home. */
function inApp(url) {
  try {
    const target = new URL(url || '/app/', self.location.origin);
    if (target.origin === self.location.origin && target.pathname.startsWith('/app/')) return target.href;
  } catch (_) { /* fall through */ }
  return new URL('/app/', self.location.origin).href;
}

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (_) { data = {}; }
  const title = data.title || 'Companion';
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || '',
    tag: data.prompt_id || data.alert_id || data.kind || 'companion',
    icon: '/app/v/' + VERSION + '/icon-192.png',
    data: { url: inApp(data.url) },
  }));
});

/** What a click on a notification does: focus an open app window on its URL, or open one. */
async function openNotification(notification) {
  const url = inApp(notification.data && notification.data.url);
  notification.close();
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((c) => c.url.startsWith(new URL('/app/', self.location.origin).href));
  if (open) {
    open.postMessage({ type: 'open', url });
    if (open.focus) await open.focus().catch(() => {});
    return url;
  }
  await self.clients.openWindow(url);
  return url;
}

self.addEventListener('notificationclick', (event) => {
  event.waitUntil(openNotification(event.notification));
});

self.addEventListener('message', (event) => {
  const message = event.data || {};
  if (message.type === 'flush') {
    event.waitUntil(flushOutbox().catch(() => {}));
  } else if (message.type === 'click-notification') {
    // The click path for a shown notification, by tag: what a tap does (used by the tests,
    // where a headless browser cannot tap).
    event.waitUntil(self.registration.getNotifications({ tag: message.tag })
      .then((list) => (list[0] ? openNotification(list[0]) : null)));
  }
});
