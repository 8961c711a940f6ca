// Run by tests/unit/test_studio_previews.py: node --test with QUALIFLOW_PREVIEW_MESSAGES naming a JSON file of
// the page's translated preview texts (app/web/studio.py), so these are the words a process owner reads.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { checkParameter, describeDuration, describeTimer, parseDuration } from
  '../../../app/static/js/studio/timer-preview.js';

const messages = JSON.parse(readFileSync(process.env.QUALIFLOW_PREVIEW_MESSAGES, 'utf8'));

test('durations read as words', () => {
  assert.equal(describeDuration('P3D', messages), '3 days');
  assert.equal(describeDuration('P1D', messages), '1 day');
  assert.equal(describeDuration('PT4H30M', messages), '4 hours 30 minutes');
  assert.equal(describeDuration('P1DT12H', messages), '1 day 12 hours');
  assert.equal(describeDuration('P2W', messages), '2 weeks');
  assert.equal(describeDuration('P3', messages), null);
  assert.equal(describeDuration('3 days', messages), null);
  assert.deepEqual(parseDuration('P1,5D'), { days: 1.5 });
});

test('timer durations and dates', () => {
  assert.deepEqual(describeTimer('timeDuration', '"P5D"', messages), { text: '5 days', valid: true });
  assert.deepEqual(describeTimer('timeDate', '"2030-01-31T09:00:00Z"', messages),
                   { text: 'on 2030-01-31 at 09:00 UTC', valid: true });
  assert.equal(describeTimer('timeDuration', '"P5X"', messages).valid, false);
  assert.equal(describeTimer('timeDuration', '', messages).valid, false);
});

test('cycles say how often', () => {
  assert.equal(describeTimer('timeCycle', '"R/2030-01-07T09:00:00Z/P1W"', messages).text, 'every Monday 09:00');
  assert.equal(describeTimer('timeCycle', "'R/2030-01-11T16:30:00/P7D'", messages).text, 'every Friday 16:30');
  assert.equal(describeTimer('timeCycle', '"R/P14D"', messages).text, 'every 14 days');
  assert.equal(describeTimer('timeCycle', '"R/P1D"', messages).text, 'every day');
  assert.equal(describeTimer('timeCycle', '"R3/PT1H"', messages).text, 'every hour, 3 times');
  assert.equal(describeTimer('timeCycle', '"R/2030-01-07T08:00:00Z/P1D"', messages).text, 'every day at 08:00');
  assert.equal(describeTimer('timeCycle', '"P1D"', messages).valid, false);
});

test('working days and expressions over the data', () => {
  assert.deepEqual(describeTimer('timeDate', 'add_working_days(today, 3)', messages),
                   { text: '3 working days after today', valid: true });
  assert.equal(describeTimer('timeDate', 'add_working_days(opened_on, 1)', messages).text,
               '1 working day after opened_on');
  const fromData = describeTimer('timeDate', "deadlines['recall_plan']", messages);
  assert.equal(fromData.valid, true);
  assert.match(fromData.text, /deadlines\['recall_plan'\]$/);
});

test('handler parameters are checked against their schema', () => {
  assert.equal(checkParameter('', { type: 'string' }, true), 'required');
  assert.equal(checkParameter('  ', { type: 'string' }, false), null);
  assert.equal(checkParameter("'capa_report'", { type: 'string' }, true), null);
  assert.equal(checkParameter('3', { type: 'string' }, true), 'wrongType');
  assert.equal(checkParameter('"3"', { type: 'integer' }, true), 'wrongType');
  assert.equal(checkParameter('2.5', { type: 'integer' }, true), 'wrongType');
  assert.equal(checkParameter('7', { type: 'integer' }, true), null);
  assert.equal(checkParameter("get('lots', [])", { type: 'array' }, true), null);
  assert.equal(checkParameter("['a']", { type: 'array' }, true), null);
});
