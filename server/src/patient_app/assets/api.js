// The public JSON API, as the app uses it. The access token lives in memory only; the refresh
// token in IndexedDB. Refreshing rotates the refresh token, and presenting a spent one ends the
// whole session, so every refresh (here and in the service worker) runs under one Web Lock.

import { kvGet, kvSet, kvDelete, clearAll } from './store.js';

let access = null;
let accessUntil = 0;

/** The network could not be reached. */
export class Offline extends Error {
  constructor() { super('offline'); this.name = 'Offline'; }
}

/** The API answered with an error (`status`, `code`, `fields`). */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.name = 'ApiError';
    this.status = status;
    this.code = error.code || 'error';
    this.fields = error.fields || {};
  }
}

/** The session ended (signed out elsewhere, or the refresh token expired). */
export class SignedOut extends Error {
  constructor() { super('signed out'); this.name = 'SignedOut'; }
}

function withLock(name, work) {
  if (navigator.locks && navigator.locks.request) return navigator.locks.request(name, work);
  return work();
}

async function send(method, path, body, token) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    throw new Offline();
  }
  // The service worker answers 503 `offline` when neither the network nor its cache can.
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (response.status === 503 && data && data.error && data.error.code === 'offline') throw new Offline();
  return { status: response.status, data, response };
}

function keep(tokens) {
  access = tokens.access_token;
  accessUntil = Date.now() + Math.max(0, (tokens.expires_in || 60) - 30) * 1000;
  return kvSet('refresh_token', tokens.refresh_token);
}

let refreshing = null;

/**
 * Exchanges the stored refresh token for a new pair. Calls made meanwhile share the one
 * exchange; `rejected` names the access token the server just refused (so a token another
 * tab or the service worker fetched meanwhile is used rather than rotating again).
 */
export function refresh(rejected = null) {
  if (!refreshing) {
    refreshing = exchange(rejected).finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function exchange(rejected) {
  return withLock('companion-auth', async () => {
    if (access && access !== rejected && Date.now() < accessUntil) return;
    const token = await kvGet('refresh_token');
    if (!token) throw new SignedOut();
    const { status, data } = await send('POST', '/v1/auth/refresh', { refresh_token: token });
    if (status === 200) { await keep(data); return; }
    if (status === 401 || status === 400 || status === 404) {
      access = null;
      await kvDelete('refresh_token');
      throw new SignedOut();
    }
    throw new ApiError(status, data);
  });
}

/** Whether this device holds a session (possibly to be refreshed). */
export async function hasSession() {
  return Boolean(access) || Boolean(await kvGet('refresh_token'));
}

/**
 * Calls the API as the signed-in person: refreshes the access token when needed and once more
 * on a 401. Offline, a GET still goes out without a token, so the service worker can answer it
 * from its cache. Returns the parsed body; throws Offline, SignedOut or ApiError.
 */
export async function call(method, path, body) {
  let offline = false;
  if (!access || Date.now() > accessUntil) {
    try { await refresh(); } catch (error) {
      if (!(error instanceof Offline) || method !== 'GET') throw error;
      offline = true;
    }
  }
  let reply = await send(method, path, body, offline ? null : access);
  if (reply.status === 401 && !offline) {
    await refresh(access);
    reply = await send(method, path, body, access);
  }
  if (reply.status === 401) throw new SignedOut();
  if (reply.status >= 400) throw new ApiError(reply.status, reply.data);
  return reply.data;
}

/** Like `call`, but answers the raw response (for downloads). */
export async function download(path) {
  if (!access || Date.now() > accessUntil) await refresh();
  const reply = await send('GET', path, undefined, access);
  if (reply.status >= 400) throw new ApiError(reply.status, reply.data);
  return reply.data;
}

export async function signIn(email, password) {
  const { status, data } = await send('POST', '/v1/auth/login', { email, password });
  if (status !== 200) throw new ApiError(status, data);
  await keep(data);
}

export async function acceptInvitation(fields) {
  const { status, data } = await send('POST', '/v1/invitations/accept', fields);
  if (status !== 201 && status !== 200) throw new ApiError(status, data);
  await keep(data);
}

/** Unauthenticated GET (the Web Push key). Returns null on 404. */
export async function publicGet(path) {
  const { status, data } = await send('GET', path);
  if (status === 404) return null;
  if (status >= 400) throw new ApiError(status, data);
  return data;
}

/** Ends the session on the server (when reachable) and forgets everything on this device. */
export async function signOut() {
  try {
    if (!access) await refresh();
    await send('POST', '/v1/auth/logout', undefined, access);
  } catch (_) { /* forgetting locally is what matters; the token is removed below */ }
  access = null;
  await forget();
}

/** Removes tokens, queued items and cached answers. */
export async function forget() {
  access = null;
  await clearAll();
  if (self.caches) {
    for (const name of await caches.keys()) {
      if (name.startsWith('companion-api')) await caches.delete(name);
    }
  }
}
