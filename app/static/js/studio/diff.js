/* The studio's diff page: two versions side by side (read-only viewers), added elements green on the newer,
   removed red on the older, changed amber on both; the property changes from /studio/api/diff as a table. */
import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';

import { call } from './api.js';
import spiffworkflow from './spiffworkflow.json';

const MARKERS = { added: 'diff-added', removed: 'diff-removed', changed: 'diff-changed' };

async function show(container, url) {
  const viewer = new NavigatedViewer({ container, moddleExtensions: { spiffworkflow } });
  await viewer.importXML(await call(url, { accept: 'application/xml' }));
  viewer.get('canvas').zoom('fit-viewport', 'auto');
  return viewer;
}

function mark(viewer, items, marker) {
  const registry = viewer.get('elementRegistry');
  const canvas = viewer.get('canvas');
  items.forEach((item) => {
    if (registry.get(item.id)) {
      canvas.addMarker(item.id, marker);
    }
  });
}

function reveal(viewer, id) {
  const element = viewer.get('elementRegistry').get(id);
  if (!element) {
    return;
  }
  const canvas = viewer.get('canvas');
  const root = canvas.findRoot(element);
  if (root && root !== canvas.getRootElement()) {
    canvas.setRootElement(root);
  }
  canvas.scrollToElement(element);
}

export async function startDiff(root) {
  const [before, after, diff] = await Promise.all([
    show(root.querySelector('[data-diff-canvas="from"]'), root.dataset.fromUrl),
    show(root.querySelector('[data-diff-canvas="to"]'), root.dataset.toUrl),
    call(root.dataset.diffUrl)]);
  mark(before, diff.removed, MARKERS.removed);
  mark(before, diff.changed, MARKERS.changed);
  mark(after, diff.added, MARKERS.added);
  mark(after, diff.changed, MARKERS.changed);
  const body = root.querySelector('[data-diff-rows]');
  const row = (kind, item, change) => {
    const tr = document.createElement('tr');
    tr.setAttribute('data-kind', kind);
    tr.setAttribute('data-element', item.id);
    const cells = [root.dataset['label' + kind[0].toUpperCase() + kind.slice(1)], null, item.type || '',
                   item.name || '', change ? change.property : '', change ? stringify(change.old) : '',
                   change ? stringify(change.new) : ''];
    cells.forEach((text, index) => {
      const td = document.createElement('td');
      if (index === 0) {
        const badge = document.createElement('span');
        badge.className = 'diff-badge ' + MARKERS[kind];
        badge.textContent = text;
        td.appendChild(badge);
      } else if (index === 1) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'btn btn-link btn-sm p-0 font-monospace';
        button.textContent = item.id;
        button.addEventListener('click', () => { reveal(before, item.id); reveal(after, item.id); });
        td.appendChild(button);
      } else {
        td.textContent = text;
        if (index >= 5) { td.className = 'font-monospace small text-break'; }
      }
      tr.appendChild(td);
    });
    body.appendChild(tr);
  };
  diff.added.forEach((item) => row('added', item));
  diff.removed.forEach((item) => row('removed', item));
  diff.changed.forEach((item) => (item.changes || []).forEach((change) => row('changed', item, change)));
  const empty = root.querySelector('[data-diff-empty]');
  empty.hidden = Boolean(diff.added.length || diff.removed.length || diff.changed.length);
  root.setAttribute('data-studio-state', 'ready');
  return { before, after, diff };
}

function stringify(value) {
  if (value === null || value === undefined) {
    return '—';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}
