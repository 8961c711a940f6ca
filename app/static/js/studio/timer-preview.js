/* Readable previews of what the properties panel edits: ISO 8601 durations ("3 days"), timer expressions
   ("every Monday 09:00", "5 days", "3 working days") and parameter checks. Pure functions without the DOM:
   the page passes its translated message templates, and tests/unit/js runs them in Node. */

const DURATION = /^P(?!$)(?:(\d+(?:[.,]\d+)?)Y)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?(?:T(?=\d)(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$/;
const UNITS = ['years', 'months', 'weeks', 'days', 'hours', 'minutes', 'seconds'];
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const REPEAT = /^R(\d*)\/(.+)$/;
const WORKING_DAYS = /^add_working_days\(\s*(.+?)\s*,\s*(\d+)\s*\)$/;

/** Fill a message template's {name} placeholders. */
export function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function plural(forms, n) {
  // forms: [one, other]; a language without plurals gives the same text twice.
  return fill(Number(n) === 1 ? forms[0] : forms[1], { n });
}

/** Parse an ISO 8601 duration ("P3D", "PT4H30M", "P2W") into its parts, or return null. */
export function parseDuration(text) {
  const match = DURATION.exec(String(text || '').trim());
  if (!match) {
    return null;
  }
  const parts = {};
  UNITS.forEach((unit, index) => {
    if (match[index + 1] !== undefined) {
      parts[unit] = Number(match[index + 1].replace(',', '.'));
    }
  });
  return parts;
}

/** Say a duration in words ("3 days", "1 day 4 hours"), or return null when it is not one. */
export function describeDuration(text, messages) {
  const parts = parseDuration(text);
  if (!parts) {
    return null;
  }
  const words = UNITS.filter((unit) => parts[unit]).map((unit) => plural(messages.units[unit], parts[unit]));
  return words.length ? words.join(messages.separator) : plural(messages.units.seconds, 0);
}

function describeEvery(text, messages) {
  const parts = parseDuration(text);
  if (!parts) {
    return null;
  }
  const used = UNITS.filter((unit) => parts[unit]);
  if (used.length === 1 && parts[used[0]] === 1) {
    return messages.everyOne[used[0]];
  }
  return fill(messages.every, { duration: describeDuration(text, messages) });
}

function describeDate(text, messages) {
  const match = DATE_TIME.exec(text);
  if (!match) {
    return null;
  }
  const zone = match[3] === undefined ? '' : (match[3] === 'Z' ? 'UTC' : match[3]);
  return fill(messages.onDate, { date: match[1], time: [match[2] || '00:00', zone].filter(Boolean).join(' ') });
}

function weekday(date) {
  // The weekday of a calendar date, whatever the browser's time zone (0 = Sunday).
  const [year, month, day] = date.split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay();
}

function describeCycle(text, messages) {
  const match = REPEAT.exec(text);
  if (!match) {
    return null;
  }
  const pieces = match[2].split('/');
  let phrase = null;
  if (pieces.length === 1) {
    phrase = describeEvery(pieces[0], messages);
  } else if (pieces.length === 2) {
    const start = DATE_TIME.exec(pieces[0]);
    const step = parseDuration(pieces[1]);
    if (!start || !step) {
      return null;
    }
    const time = start[2] || '00:00';
    const units = UNITS.filter((unit) => step[unit]);
    const weekly = units.length === 1 && ((units[0] === 'weeks' && step.weeks === 1) ||
                                          (units[0] === 'days' && step.days === 7));
    const daily = units.length === 1 && units[0] === 'days' && step.days === 1;
    if (weekly) {
      phrase = fill(messages.everyWeekday, { weekday: messages.weekdays[weekday(start[1])], time });
    } else if (daily) {
      phrase = fill(messages.everyDayAt, { time });
    } else {
      phrase = fill(messages.everyFrom, { every: describeEvery(pieces[1], messages), date: start[1], time });
    }
  }
  if (phrase === null) {
    return null;
  }
  return match[1] ? fill(messages.times, { text: phrase, n: match[1] }) : phrase;
}

/** Read a Python string literal ("P5D" or 'P5D'); return null for any other expression. */
export function stringLiteral(expression) {
  const match = /^(["'])([^"'\\]*)\1$/.exec(String(expression || '').trim());
  return match ? match[2] : null;
}

/**
 * Say what a timer does: kind is timeDate, timeDuration or timeCycle, expression the Python expression the
 * engine evaluates. Returns {text, valid}: valid is false when the text can be no timer at all.
 */
export function describeTimer(kind, expression, messages) {
  const source = String(expression || '').trim();
  if (!source) {
    return { text: messages.empty, valid: false };
  }
  const working = WORKING_DAYS.exec(source);
  if (working) {
    const days = plural(messages.workingDays, working[2]);
    return { text: fill(messages.workingDaysAfter, { days, start: working[1] }), valid: true };
  }
  const literal = stringLiteral(source);
  if (literal === null) {
    return { text: fill(messages.fromData, { expression: source }), valid: true };
  }
  const describe = { timeDuration: describeDuration, timeDate: describeDate, timeCycle: describeCycle }[kind];
  const text = describe ? describe(literal.trim(), messages) : null;
  return text === null ? { text: fill(messages.invalid, { value: literal }), valid: false } : { text, valid: true };
}

const JSON_TYPES = { string: 'string', integer: 'number', number: 'number', boolean: 'boolean', array: 'object',
                     object: 'object' };

/**
 * Check one handler parameter's expression against its JSON Schema: a required one must be given, and a
 * literal must have the schema's type (other expressions are evaluated when the task runs). Returns a
 * message template key or null.
 */
export function checkParameter(value, schema, required) {
  const source = String(value === undefined || value === null ? '' : value).trim();
  if (!source) {
    return required ? 'required' : null;
  }
  const wanted = JSON_TYPES[(schema || {}).type];
  if (!wanted) {
    return null;
  }
  let literalType = null;
  if (stringLiteral(source) !== null) {
    literalType = 'string';
  } else if (/^-?\d+(\.\d+)?$/.test(source)) {
    literalType = 'number';
  } else if (source === 'True' || source === 'False') {
    literalType = 'boolean';
  } else if (/^[[{]/.test(source) && /[\]}]$/.test(source)) {
    literalType = 'object';
  }
  if (literalType === 'number' && schema.type === 'integer' && !/^-?\d+$/.test(source)) {
    return 'wrongType';
  }
  return literalType === null || literalType === wanted ? null : 'wrongType';
}
