// Screens of the patient app and the small DOM helpers they share. Every text is set through
// textContent (never innerHTML), so nothing the server or a person typed can become markup.

/** Creates an element: h('p', {class: 'x'}, 'text', child, ...). */
export function h(tag, attributes = {}, ...children) {
  const svg = ['svg', 'line', 'polyline', 'circle', 'text', 'title', 'desc', 'g'].includes(tag);
  const element = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Announces a short message in the status line (polite live region). */
export function say(text) {
  const status = document.getElementById('status');
  status.textContent = '';
  if (text) setTimeout(() => { status.textContent = text; }, 50);
}

export function when(iso, options = { dateStyle: 'medium', timeStyle: 'short' }) {
  try { return new Intl.DateTimeFormat(undefined, options).format(new Date(iso)); } catch (_) { return iso; }
}

/** Resources shown when none could be fetched yet: never empty. */
export const FALLBACK_RESOURCES = {
  message: 'If you are in danger or might act on thoughts of harming yourself, call your local emergency number now.',
  emergency_numbers: [],
  lines: [{ name: 'Find a helpline near you', url: 'https://findahelpline.com' }],
};

function telHref(number) { return number.replace(/[^0-9+]/g, ''); }

/** The crisis resources as a panel with call, text and web links. */
export function crisisPanel(resources, lead) {
  const r = resources || FALLBACK_RESOURCES;
  const items = [];
  for (const number of r.emergency_numbers || []) {
    items.push(h('li', {}, h('a', { class: 'call', href: `tel:${telHref(number)}` }, `Emergency: call ${number}`)));
  }
  for (const line of r.lines || []) {
    const ways = [];
    if (line.call) ways.push(h('a', { class: 'call', href: `tel:${telHref(line.call)}` }, `Call ${line.call}`));
    if (line.text) ways.push(h('a', { href: `sms:${telHref(line.text)}` }, `Text ${line.text}`));
    if (line.url) ways.push(h('a', { href: line.url, rel: 'noopener noreferrer', target: '_blank' }, 'Website'));
    items.push(h('li', {}, h('strong', {}, line.name), ': ', ...ways.flatMap((w, i) => (i ? [' · ', w] : [w]))));
  }
  return h('section', { class: 'crisis', 'aria-labelledby': 'crisis-h', 'data-crisis': 'resources' },
    h('h2', { id: 'crisis-h' }, 'Help is available now'),
    lead ? h('p', {}, lead) : null,
    h('p', {}, r.message),
    h('ul', { class: 'lines' }, items));
}

/** The server's safety notice, in its own words, with where the care team stands. */
export function safetyNotice(safety) {
  const reached = safety.care_team === 'reached';
  return h('div', { class: 'safety', 'data-care-team': safety.care_team },
    h('p', { class: `notice${reached ? ' reached' : ''}`, role: 'alert' }, safety.message),
    safety.advice ? h('p', { class: 'notice' }, safety.advice) : null,
    crisisPanel(safety.crisis_resources));
}

function field(id, label, attributes = {}, hint = null) {
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  return [
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('input', { id, name: id, 'aria-describedby': [hintId, errorId].filter(Boolean).join(' '), ...attributes }),
    h('p', { class: 'error', id: errorId }),
  ];
}

function showErrors(form, error, map = {}) {
  for (const p of form.querySelectorAll('.error')) p.textContent = '';
  let first = null;
  for (const [name, message] of Object.entries((error && error.fields) || {})) {
    const id = map[name] || name;
    const target = form.querySelector(`#${CSS.escape(id)}-error`);
    if (target) {
      target.textContent = message;
      first = first || form.querySelector(`#${CSS.escape(id)}`);
    }
  }
  const general = form.querySelector('.form-error');
  if (general) general.textContent = first ? 'Please check the fields marked above.' : error.message;
  if (first) first.focus();
}

function title(text) { return h('h1', { tabindex: '-1' }, text); }

// ---- Enrolment, sign-in and consent ----------------------------------------------------------

export function joinView(root, ctx, code) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const form = h('form', { novalidate: true },
    h('p', {}, 'Your clinic invited you to Companion, so you can check in between treatment sessions and reach your care team.'),
    ...field('email', 'Email', { type: 'email', autocomplete: 'email', required: true }),
    ...field('display_name', 'Your name', { type: 'text', autocomplete: 'name', maxlength: '100', required: true }, 'Shown to your care team.'),
    ...field('password', 'Choose a password', { type: 'password', autocomplete: 'new-password', minlength: '10', required: true }, 'At least 10 characters.'),
    ...field('timezone', 'Time zone', { type: 'text', value: zone, autocomplete: 'off', required: true }, 'From this phone; check-ins arrive in its local time. Change it if it is wrong.'),
    h('p', { class: 'error form-error', role: 'alert' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create my account')));
  root.replaceChildren(title('Welcome'), form,
    h('p', { class: 'muted' }, 'Already have an account? ', h('a', { href: '#/sign-in' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = (id) => form.querySelector(`#${id}`).value;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await ctx.api.acceptInvitation({
        code, email: value('email').trim(), password: value('password'),
        display_name: value('display_name').trim() || null, timezone: value('timezone').trim(),
      });
      // The code has done its work: keep it out of the history.
      history.replaceState(null, '', '/app/#/consent');
      await ctx.signedIn();
      ctx.go('#/consent');
    } catch (error) {
      button.disabled = false;
      if (error.name === 'Offline') showErrors(form, { message: 'You are offline. Connect to the internet to create your account.' });
      else if (error.code && error.code.includes('invitation')) showErrors(form, { message: 'This invitation link is not valid any more (used, expired or revoked). Ask your clinic for a new one.' });
      else showErrors(form, error);
    }
  });
}

export function signInView(root, ctx) {
  const form = h('form', { novalidate: true },
    ...field('email', 'Email', { type: 'email', autocomplete: 'username', required: true }),
    ...field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    h('p', { class: 'error form-error', role: 'alert' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  root.replaceChildren(title('Sign in'), form,
    h('p', { class: 'muted' }, 'New here? Open the invitation link your clinic gave you.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await ctx.api.signIn(form.querySelector('#email').value.trim(), form.querySelector('#password').value);
      await ctx.signedIn();
      ctx.go('#/home');
    } catch (error) {
      button.disabled = false;
      if (error.name === 'Offline') showErrors(form, { message: 'You are offline. Connect to the internet to sign in.' });
      else if (error.status === 401) showErrors(form, { message: 'That email and password do not match an account.' });
      else showErrors(form, error);
    }
  });
}

export async function consentView(root, ctx) {
  const consent = await ctx.get('/v1/me/consent');
  if (!consent.current) { ctx.go('#/home'); return; }
  const doc = consent.current;
  const standing = {
    accepted: 'You accepted this document.', earlier_version: 'You accepted an earlier version; this one is new.',
    declined: 'You declined this document.', withdrawn: 'You withdrew your consent.', not_given: 'You have not answered yet.',
  }[consent.standing] || '';
  const result = h('p', { role: 'status' });
  const decide = async (action) => {
    try {
      await ctx.api.call('POST', '/v1/me/consent', { action, document_id: doc.id });
      if (action === 'accept') { say('Thank you. Your consent is recorded.'); ctx.go('#/home'); return; }
      result.textContent = action === 'decline'
        ? 'Your answer is recorded. You will not be asked to check in. "Get help now" still works.'
        : 'Your consent is withdrawn. You will not be asked to check in.';
    } catch (error) { result.textContent = error.message; }
  };
  const buttons = consent.standing === 'accepted'
    ? [h('button', { type: 'button', class: 'danger', onclick: () => decide('withdraw') }, 'Withdraw my consent')]
    : [h('button', { type: 'button', class: 'primary', onclick: () => decide('accept') }, 'I agree'),
      h('button', { type: 'button', class: 'secondary', onclick: () => decide('decline') }, 'I do not agree')];
  root.replaceChildren(title('Consent'),
    h('h2', {}, doc.title), h('p', { class: 'muted' }, `Version ${doc.version} · ${standing}`),
    h('div', { class: 'consent-body', tabindex: '0', role: 'document', 'aria-label': doc.title }, doc.body),
    h('div', { class: 'actions' }, ...buttons), result,
    h('p', {}, h('a', { href: '#/home' }, 'Back to home')));
}

// ---- Home ------------------------------------------------------------------------------------

const INSTRUMENT_ORDER = ['daily_mood', 'phq9', 'gad7', 'phq2'];

function describe(checkIn) {
  if (checkIn.instrument === 'daily_mood' && checkIn.answers && checkIn.answers.mood !== undefined) return `Mood ${checkIn.answers.mood} of 10`;
  if (checkIn.score) return `Score ${checkIn.score.total} of ${checkIn.score.max}`;
  return checkIn.status === 'incomplete' ? 'Sent (some answers missing)' : 'Sent';
}

export async function homeView(root, ctx) {
  const [me, prompts, instruments, sessions, recent, waiting, consent] = await Promise.all([
    ctx.get('/v1/me'), ctx.get('/v1/me/prompts').catch(() => ({ items: [] })), ctx.instruments(),
    ctx.get('/v1/me/sessions').catch(() => ({ items: [] })),
    ctx.get('/v1/me/check-ins?limit=5').catch(() => ({ items: [] })), ctx.outbox(),
    ctx.get('/v1/me/consent').catch(() => null),
  ]);
  const names = Object.fromEntries(instruments.map((i) => [i.key, i.title]));
  const now = Date.now();
  const open = (p) => ['sent', 'reminded'].includes(p.status) && Date.parse(p.due_at) <= now && now < Date.parse(p.expires_at);
  const due = prompts.items.filter(open);
  const upcoming = prompts.items.filter((p) => p.status === 'scheduled').slice(0, 3);
  const next = sessions.items
    .filter((s) => s.status === 'scheduled' && Date.parse(s.scheduled_at) > now)
    .sort((a, b) => Date.parse(a.scheduled_at) - Date.parse(b.scheduled_at))[0];
  const sections = [];
  if (consent && ['not_given', 'earlier_version'].includes(consent.standing) && consent.current) {
    sections.push(h('section', { class: 'card' }, h('h2', {}, 'Please read the consent'),
      h('p', {}, 'Your clinic asks you to read and answer its consent document.'),
      h('a', { class: 'button primary', href: '#/consent' }, 'Read the consent')));
  }
  sections.push(h('section', { class: 'card', 'aria-labelledby': 'due-h' }, h('h2', { id: 'due-h' }, 'Due now'),
    due.length ? h('ul', { class: 'list' }, due.map((p) => h('li', {},
      h('span', {}, names[p.instrument] || p.instrument, h('br'), h('span', { class: 'muted' }, `Open until ${when(p.expires_at)}`)),
      h('a', { class: 'button primary', href: `#/check-in/${encodeURIComponent(p.id)}` }, 'Start'))))
      : h('p', { class: 'muted' }, 'Nothing is due right now.')));
  if (upcoming.length) {
    sections.push(h('section', { class: 'card', 'aria-labelledby': 'up-h' }, h('h2', { id: 'up-h' }, 'Coming up'),
      h('ul', { class: 'list' }, upcoming.map((p) => h('li', {}, h('span', {}, names[p.instrument] || p.instrument), h('span', { class: 'muted' }, when(p.due_at)))))));
  }
  sections.push(h('section', { class: 'card', 'aria-labelledby': 'next-h' }, h('h2', { id: 'next-h' }, 'Next treatment session'),
    next ? h('p', {}, when(next.scheduled_at, { dateStyle: 'full', timeStyle: 'short' })) : h('p', { class: 'muted' }, 'None scheduled.')));
  const ordered = [...instruments].sort((a, b) => INSTRUMENT_ORDER.indexOf(a.key) - INSTRUMENT_ORDER.indexOf(b.key));
  sections.push(h('section', { class: 'card', 'aria-labelledby': 'any-h' }, h('h2', { id: 'any-h' }, 'Check in now'),
    h('div', { class: 'actions' }, ordered.map((i) => h('a', { class: `button${i.key === 'daily_mood' ? ' primary' : ''}`, href: `#/new/${encodeURIComponent(i.key)}` }, i.title)))));
  const rows = [
    ...waiting.map((item) => h('li', { 'data-outbox': item.id },
      h('span', {}, item.label || 'Check-in', h('br'), h('span', { class: 'muted' }, when(item.queued_at))),
      h('span', { class: 'badge waiting' }, item.state === 'refused' ? `Not accepted: ${item.problem}` : 'Waiting to send'))),
    ...recent.items.map((c) => h('li', { 'data-check-in': c.id },
      h('span', {}, names[c.instrument] || c.instrument, h('br'), h('span', { class: 'muted' }, when(c.completed_at))),
      h('span', { class: 'badge' }, describe(c)))),
  ];
  sections.push(h('section', { class: 'card', 'aria-labelledby': 'last-h' }, h('h2', { id: 'last-h' }, 'Last check-ins'),
    rows.length ? h('ul', { class: 'list', id: 'recent' }, rows) : h('p', { class: 'muted' }, 'No check-ins yet.')));
  root.replaceChildren(title(`Hello${me.display_name ? `, ${me.display_name}` : ''}`), ...sections);
}

// ---- History ---------------------------------------------------------------------------------

function lineChart(id, label, points, max) {
  const width = 320; const height = 160; const left = 28; const bottom = 20; const top = 8; const right = 8;
  const x = (i) => left + (points.length < 2 ? (width - left - right) / 2 : (i * (width - left - right)) / (points.length - 1));
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const svg = h('svg', { class: 'chart', id, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t` },
    h('title', { id: `${id}-t` }, `${label}: ${points.length} values; the table below lists them.`),
    h('line', { class: 'axis', x1: left, y1: y(0), x2: width - right, y2: y(0) }),
    h('line', { class: 'axis', x1: left, y1: y(max), x2: left, y2: y(0) }),
    h('text', { x: 2, y: y(max) + 4 }, String(max)), h('text', { x: 2, y: y(0) + 4 }, '0'));
  if (points.length > 1) svg.append(h('polyline', { class: 'series', points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(' ') }));
  points.forEach((p, i) => svg.append(h('circle', { class: 'point', cx: x(i), cy: y(p.value), r: 3.5 })));
  return svg;
}

export async function historyView(root, ctx) {
  const [list, instruments] = await Promise.all([ctx.get('/v1/me/check-ins?limit=200'), ctx.instruments()]);
  const names = Object.fromEntries(instruments.map((i) => [i.key, i.title]));
  const items = [...list.items].sort((a, b) => Date.parse(a.completed_at) - Date.parse(b.completed_at));
  const mood = items.filter((c) => c.instrument === 'daily_mood' && typeof c.answers.mood === 'number').map((c) => ({ at: c.completed_at, value: c.answers.mood }));
  const phq9 = items.filter((c) => c.instrument === 'phq9' && c.score).map((c) => ({ at: c.completed_at, value: c.score.total }));
  root.replaceChildren(title('My history'),
    h('section', { class: 'card', 'aria-labelledby': 'mood-h' }, h('h2', { id: 'mood-h' }, 'Mood (0 to 10)'),
      mood.length ? lineChart('mood-chart', 'Mood', mood, 10) : h('p', { class: 'muted' }, 'No mood check-ins yet.')),
    h('section', { class: 'card', 'aria-labelledby': 'phq-h' }, h('h2', { id: 'phq-h' }, 'PHQ-9 total (0 to 27)'),
      phq9.length ? lineChart('phq9-chart', 'PHQ-9 total', phq9, 27) : h('p', { class: 'muted' }, 'No PHQ-9 yet.')),
    h('section', { 'aria-labelledby': 'table-h' }, h('h2', { id: 'table-h' }, 'All check-ins'),
      h('table', {}, h('caption', { class: 'visually-hidden' }, 'My check-ins, newest first'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Check-in'), h('th', { scope: 'col' }, 'Result'))),
        h('tbody', {}, [...items].reverse().map((c) => h('tr', {},
          h('td', {}, when(c.completed_at, { dateStyle: 'short', timeStyle: 'short' })), h('td', {}, names[c.instrument] || c.instrument), h('td', {}, describe(c))))))));
}

export async function sessionsView(root, ctx) {
  const sessions = await ctx.get('/v1/me/sessions');
  const modality = { iv_infusion: 'IV infusion', intramuscular: 'Intramuscular injection', intranasal_esketamine: 'Esketamine nasal spray', oral_lozenge: 'Lozenge' };
  const items = [...sessions.items].sort((a, b) => Date.parse(b.scheduled_at) - Date.parse(a.scheduled_at));
  root.replaceChildren(title('My sessions'),
    items.length ? h('ul', { class: 'list card' }, items.map((s) => h('li', {},
      h('span', {}, modality[s.modality] || s.modality, h('br'), h('span', { class: 'muted' }, when(s.scheduled_at, { dateStyle: 'full', timeStyle: 'short' }))),
      h('span', { class: 'badge' }, s.status))))
      : h('p', { class: 'muted' }, 'No sessions yet.'));
}

// ---- Settings --------------------------------------------------------------------------------

export async function settingsView(root, ctx) {
  const prefs = await ctx.get('/v1/me/preferences');
  const prefsForm = h('form', { novalidate: true, id: 'prefs-form' },
    ...field('pref-timezone', 'Time zone', { type: 'text', value: prefs.timezone }),
    h('div', { class: 'row' },
      h('div', {}, ...field('window-start', 'Check-ins from', { type: 'time', value: prefs.check_in_window.start })),
      h('div', {}, ...field('window-end', 'until', { type: 'time', value: prefs.check_in_window.end }))),
    h('div', { class: 'row' },
      h('div', {}, ...field('quiet-start', 'Quiet from', { type: 'time', value: prefs.quiet_hours.start })),
      h('div', {}, ...field('quiet-end', 'until', { type: 'time', value: prefs.quiet_hours.end }))),
    h('p', { class: 'error form-error', role: 'alert' }),
    h('button', { type: 'submit', class: 'primary' }, 'Save preferences'));
  prefsForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = (id) => prefsForm.querySelector(`#${id}`).value;
    try {
      await ctx.api.call('PUT', '/v1/me/preferences', {
        timezone: v('pref-timezone').trim(),
        check_in_window: { start: v('window-start'), end: v('window-end') },
        quiet_hours: { start: v('quiet-start'), end: v('quiet-end') },
      });
      showErrors(prefsForm, { message: '' });
      say('Preferences saved.');
    } catch (error) {
      showErrors(prefsForm, error, { timezone: 'pref-timezone', 'check_in_window.start': 'window-start', 'check_in_window.end': 'window-end', 'quiet_hours.start': 'quiet-start', 'quiet_hours.end': 'quiet-end', check_in_window: 'window-start', quiet_hours: 'quiet-start' });
    }
  });

  const passwordForm = h('form', { novalidate: true, id: 'password-form' },
    ...field('current_password', 'Current password', { type: 'password', autocomplete: 'current-password' }),
    ...field('new_password', 'New password', { type: 'password', autocomplete: 'new-password', minlength: '10' }, 'At least 10 characters. Your other devices will be signed out.'),
    h('p', { class: 'error form-error', role: 'alert' }),
    h('button', { type: 'submit', class: 'primary' }, 'Change password'));
  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await ctx.api.call('POST', '/v1/me/password', {
        current_password: passwordForm.querySelector('#current_password').value,
        new_password: passwordForm.querySelector('#new_password').value,
      });
      passwordForm.reset();
      showErrors(passwordForm, { message: '' });
      say('Password changed.');
    } catch (error) { showErrors(passwordForm, error); }
  });

  const exportResult = h('p', { role: 'status' });
  const exportButton = h('button', { type: 'button' }, 'Download my data');
  exportButton.addEventListener('click', async () => {
    try {
      const data = await ctx.api.download('/v1/me/export');
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      const link = h('a', { href: url, download: 'companion-my-data.json' }, 'Save the file');
      exportResult.replaceChildren('Your data is ready: ', link);
      link.click();
    } catch (error) { exportResult.textContent = error.message; }
  });

  const logList = h('div', {});
  const logButton = h('button', { type: 'button' }, 'Show who read my data');
  logButton.addEventListener('click', async () => {
    try {
      const log = await ctx.api.call('GET', '/v1/me/access-log?limit=50');
      logList.replaceChildren(log.items.length
        ? h('ul', { class: 'list', id: 'access-log' }, log.items.map((e) => h('li', {},
          h('span', {}, (e.actor && e.actor.display_name) || 'A staff member', h('br'), h('span', { class: 'muted' }, e.action)),
          h('span', { class: 'muted' }, when(e.at)))))
        : h('p', { class: 'muted' }, 'Nobody on the staff has read your data yet.'));
    } catch (error) { logList.textContent = error.message; }
  });

  const eraseConfirm = h('input', { type: 'checkbox', id: 'erase-confirm' });
  const eraseButton = h('button', { type: 'button', class: 'danger', disabled: true }, 'Erase my account and data');
  const eraseResult = h('p', { role: 'alert' });
  eraseConfirm.addEventListener('change', () => { eraseButton.disabled = !eraseConfirm.checked; });
  eraseButton.addEventListener('click', async () => {
    try {
      await ctx.api.call('POST', '/v1/me/erasure');
      await ctx.api.forget();
      ctx.signedOut('Your account and data are being erased.');
    } catch (error) { eraseResult.textContent = error.message; }
  });

  root.replaceChildren(title('Settings'),
    h('section', { class: 'card', 'aria-labelledby': 'push-h' }, h('h2', { id: 'push-h' }, 'Notifications'), await ctx.pushSwitch()),
    h('section', { class: 'card', 'aria-labelledby': 'prefs-h' }, h('h2', { id: 'prefs-h' }, 'When to ask me'), prefsForm),
    h('section', { class: 'card', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Password'), passwordForm),
    h('section', { class: 'card', 'aria-labelledby': 'data-h' }, h('h2', { id: 'data-h' }, 'My data'),
      h('p', {}, 'Download everything Companion holds about you.'), exportButton, exportResult,
      h('h3', {}, 'Who read my data'), logButton, logList,
      h('p', {}, h('a', { href: '#/consent' }, 'My consent'))),
    h('section', { class: 'card', 'aria-labelledby': 'erase-h' }, h('h2', { id: 'erase-h' }, 'Erase my account'),
      h('details', {}, h('summary', {}, 'What erasing does'),
        h('p', {}, 'Erasing removes your account and your check-ins under your clinic’s retention rules. It cannot be undone. Your care team will no longer see your check-ins or be alerted by them, and you will be signed out on every device.'),
        h('p', {}, 'If you are having a hard time, please talk to your care team first, or use "Get help now".'),
        h('div', { class: 'switch' }, eraseConfirm, h('label', { for: 'erase-confirm' }, 'I understand that this cannot be undone')),
        eraseButton, eraseResult)),
    h('div', { class: 'actions' }, h('button', { type: 'button', id: 'sign-out', class: 'secondary', onclick: () => ctx.signOut() }, 'Sign out')));
}
