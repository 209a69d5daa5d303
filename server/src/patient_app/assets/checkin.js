// Check-ins: a form rendered from the instrument catalogue (every item kind it has), checked
// as the server checks it, and the safety path: an item-9 answer of 1 or more shows the crisis
// resources at once, before anything is sent, and the server's notice after.

import { h, crisisPanel, safetyNotice, say } from './views.js';

/** Whether an item is the PHQ-9's item 9 (by LOINC code, or its id in the PHQ-9). */
export function isSafetyItem(instrument, item) {
  return item.loinc === '44260-8' || (instrument.key === 'phq9' && item.id === 'q9');
}

/** Checks one answer as the server does; returns a message or null. */
export function checkAnswer(kind, value) {
  switch (kind.type) {
    case 'choice':
      return Number.isInteger(value) && kind.options.some((o) => o.value === value)
        ? null : 'Choose one of the answers.';
    case 'integer':
      return Number.isInteger(value) && value >= kind.min && value <= kind.max
        ? null : `Enter a whole number from ${kind.min} to ${kind.max}.`;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && value >= kind.min && value <= kind.max
        ? null : `Enter a number from ${kind.min} to ${kind.max}.`;
    case 'boolean':
      return typeof value === 'boolean' ? null : 'Choose yes or no.';
    case 'text':
      // eslint-disable-next-line no-control-regex
      return typeof value === 'string' && [...value].length <= kind.max_length && !/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(value)
        ? null : `Write at most ${kind.max_length} characters.`;
    default:
      return null;
  }
}

/** Every problem of an answer set, by item id (the server's rules, incl. blood pressure). */
export function validate(instrument, answers) {
  const problems = {};
  for (const item of instrument.items) {
    const value = answers[item.id];
    if (value === undefined) {
      if (item.required) problems[item.id] = 'This question needs an answer.';
      continue;
    }
    const problem = checkAnswer(item.answer, value);
    if (problem) problems[item.id] = problem;
  }
  const sys = answers.bp_systolic;
  const dia = answers.bp_diastolic;
  const hasBp = instrument.items.some((i) => i.id === 'bp_systolic');
  if (hasBp && (sys === undefined) !== (dia === undefined)) {
    problems[sys === undefined ? 'bp_systolic' : 'bp_diastolic'] = 'Enter both blood pressure numbers, or neither.';
  } else if (hasBp && sys !== undefined && dia !== undefined && !problems.bp_systolic && sys <= dia) {
    problems.bp_systolic = 'The top number (systolic) is higher than the bottom number.';
  }
  return problems;
}

function optionTile(name, value, label, describedBy) {
  const input = h('input', { type: 'radio', name, value: String(value) });
  if (describedBy) input.setAttribute('aria-describedby', describedBy);
  return h('label', { class: 'option' }, input, h('span', {}, label));
}

/** One item's control. Returns {element, read()} where read() gives the value or undefined. */
function control(instrument, item, index) {
  const kind = item.answer;
  const name = `item-${item.id}`;
  const errorId = `${name}-error`;
  const error = h('p', { class: 'error', id: errorId });
  const label = `${index + 1}. ${item.text}${item.required ? '' : ' (optional)'}`;
  let element;
  let read;
  if (kind.type === 'choice' || kind.type === 'boolean' || (kind.type === 'integer' && kind.max - kind.min <= 10)) {
    const options = kind.type === 'choice' ? kind.options.map((o) => [o.value, o.label])
      : kind.type === 'boolean' ? [[true, 'Yes'], [false, 'No']]
        : Array.from({ length: kind.max - kind.min + 1 }, (_, k) => [kind.min + k, String(kind.min + k)]);
    const scale = kind.type === 'integer';
    const group = h('div', { class: `options${scale ? ' scale' : ''}` },
      ...options.map(([value, text]) => optionTile(name, value, text, errorId)));
    const parts = [h('legend', {}, label)];
    if (scale && (kind.min_label || kind.max_label)) {
      parts.push(h('p', { class: 'scale-labels', id: `${name}-scale` },
        h('span', {}, `${kind.min} = ${kind.min_label || ''}`), h('span', {}, `${kind.max} = ${kind.max_label || ''}`)));
    }
    element = h('fieldset', { 'data-item': item.id }, ...parts, group, error);
    read = () => {
      const checked = element.querySelector('input:checked');
      if (!checked) return undefined;
      if (kind.type === 'boolean') return checked.value === 'true';
      return Number(checked.value);
    };
  } else {
    const id = `${name}-input`;
    const unit = kind.unit ? ` (${kind.unit.replace('mm[Hg]', 'mmHg').replace(/^h$/, 'hours')})` : '';
    let input;
    if (kind.type === 'text') {
      input = h('textarea', { id, name, maxlength: String(kind.max_length), 'aria-describedby': errorId, rows: '4' });
    } else {
      input = h('input', {
        id, name, type: 'number', inputmode: kind.type === 'integer' ? 'numeric' : 'decimal',
        min: String(kind.min), max: String(kind.max), step: kind.type === 'integer' ? '1' : 'any',
        'aria-describedby': errorId,
      });
    }
    element = h('div', { 'data-item': item.id }, h('label', { for: id }, label + unit), input, error);
    read = () => {
      const raw = input.value.trim();
      if (raw === '') return undefined;
      if (kind.type === 'text') return input.value;
      const n = Number(raw.replace(',', '.'));
      return Number.isNaN(n) ? NaN : n;
    };
  }
  return { item, element, read, error };
}

/**
 * Renders a check-in for `instrument` into `root`. `submit(body)` sends or queues it and
 * answers `{sent: CheckIn}` or `{queued: true}`; `resources()` gives the cached resources.
 */
export function renderCheckIn(root, instrument, { promptId, submit, resources, done }) {
  const controls = instrument.items.map((item, i) => control(instrument, item, i));
  const crisis = h('div', { id: 'crisis-now' });
  const formError = h('p', { class: 'error', role: 'alert' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send check-in');
  const safetyItems = controls.filter((c) => isSafetyItem(instrument, c.item));
  // The resources appear right below the safety question, where the person's eyes are.
  const elements = controls.flatMap((c) => (c === safetyItems[safetyItems.length - 1] ? [c.element, crisis] : [c.element]));
  const form = h('form', { novalidate: '', 'aria-describedby': 'instructions' },
    h('p', { id: 'instructions', class: 'hint' }, instrument.instructions.toLowerCase().includes(instrument.recall_period.toLowerCase())
      ? instrument.instructions : `${instrument.instructions} (About ${instrument.recall_period}.)`),
    ...elements, formError, h('div', { class: 'actions' }, send));
  root.replaceChildren(h('h1', { tabindex: '-1' }, instrument.title), form);

  async function showCrisisIfNeeded() {
    const positive = safetyItems.some((c) => (c.read() || 0) >= 1);
    if (positive && !crisis.firstChild) {
      const panel = crisisPanel(await resources(), 'You are not alone. If you might act on these thoughts, please reach out now:');
      panel.setAttribute('role', 'alert');
      crisis.replaceChildren(panel);
      const calm = matchMedia('(prefers-reduced-motion: reduce)').matches;
      panel.scrollIntoView({ behavior: calm ? 'auto' : 'smooth', block: 'nearest' });
    } else if (!positive) {
      crisis.replaceChildren();
    }
  }
  for (const c of safetyItems) c.element.addEventListener('change', showCrisisIfNeeded);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const answers = {};
    for (const c of controls) {
      const value = c.read();
      if (value !== undefined) answers[c.item.id] = value;
    }
    const problems = validate(instrument, answers);
    const safety = safetyItems.some((c) => (answers[c.item.id] || 0) >= 1);
    for (const c of controls) {
      c.error.textContent = problems[c.item.id] || '';
      const field = c.element.querySelector('input, textarea');
      if (field && c.element.tagName !== 'FIELDSET') field.setAttribute('aria-invalid', problems[c.item.id] ? 'true' : 'false');
    }
    // A safety answer is sent even with other problems (the server stores it as incomplete).
    if (Object.keys(problems).length && !safety) {
      formError.textContent = 'Some answers need a look before sending.';
      const first = controls.find((c) => problems[c.item.id]);
      const target = first.element.querySelector('input, textarea');
      if (target) target.focus();
      return;
    }
    for (const id of Object.keys(problems)) delete answers[id];
    formError.textContent = '';
    send.disabled = true;
    const body = {
      id: crypto.randomUUID(), instrument: instrument.key, instrument_version: instrument.version,
      answers, completed_at: new Date().toISOString(),
    };
    if (promptId) body.prompt_id = promptId;
    let outcome;
    try {
      outcome = await submit(body, instrument.title);
    } catch (error) {
      send.disabled = false;
      if (error.fields) {
        for (const c of controls) c.error.textContent = error.fields[`answers.${c.item.id}`] || '';
      }
      formError.textContent = error.message;
      return;
    }
    const after = [];
    if (outcome.queued) {
      after.push(h('p', { class: 'notice' }, 'Saved on this phone, waiting to send: it will be sent as soon as you are online.'));
      if (safety) {
        after.push(h('p', { class: 'notice' }, 'Your care team has not been told yet, because this phone is offline. If you are in danger, call one of the numbers below now.'));
        after.push(crisisPanel(await resources()));
      }
    } else {
      after.push(h('p', { class: 'notice reached' }, 'Thank you. Your check-in was sent.'));
      if (outcome.sent && outcome.sent.safety) after.push(safetyNotice(outcome.sent.safety));
    }
    after.push(h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/home' }, 'Back to home')));
    root.replaceChildren(h('h1', { tabindex: '-1' }, outcome.queued ? 'Check-in saved' : 'Check-in sent'), ...after);
    root.querySelector('h1').focus();
    say(outcome.queued ? 'Check-in saved, waiting to send.' : 'Check-in sent.');
    if (done) done(outcome);
  });
}
