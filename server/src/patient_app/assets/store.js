// Local storage of the app, in IndexedDB only (never localStorage): the refresh token (the
// service worker needs it to send queued check-ins), the crisis resources kept ahead for
// offline use, and the outbox of check-ins and help requests waiting to be sent.
// sw.js holds a copy of the few functions it needs (it is a classic script).

const DB_NAME = 'companion';
let opened = null;

function open() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv');
        if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', { keyPath: 'id' });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opened;
}

async function run(store, mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const result = work(tx.objectStore(store));
    tx.oncomplete = () => resolve(result && 'result' in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export const kvGet = (key) => run('kv', 'readonly', (s) => s.get(key));
export const kvSet = (key, value) => run('kv', 'readwrite', (s) => { s.put(value, key); });
export const kvDelete = (key) => run('kv', 'readwrite', (s) => { s.delete(key); });

/** Every queued item, oldest first. */
export async function outboxAll() {
  const items = (await run('outbox', 'readonly', (s) => s.getAll())) || [];
  return items.sort((a, b) => (a.queued_at < b.queued_at ? -1 : 1));
}
export const outboxPut = (item) => run('outbox', 'readwrite', (s) => { s.put(item); });
export const outboxDelete = (id) => run('outbox', 'readwrite', (s) => { s.delete(id); });

/** Forgets everything this device holds for the signed-in person. */
export async function clearAll() {
  await run('kv', 'readwrite', (s) => { s.clear(); });
  await run('outbox', 'readwrite', (s) => { s.clear(); });
}
