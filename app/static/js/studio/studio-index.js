/* The studio's index: every process with its versions and drafts (from /studio/api/processes), and the
   import of a .bpmn file as a new draft. */
import { ApiError, call } from './api.js';
import { fill } from './timer-preview.js';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([name, value]) => {
    if (value !== undefined && value !== null) { node.setAttribute(name, value); }
  });
  children.flat().forEach((child) => node.append(child instanceof Node ? child : String(child ?? '')));
  return node;
}

function when(iso) {
  return iso ? String(iso).replace('T', ' ').slice(0, 16) + ' UTC' : '—';
}

function table(headers, rows, testid) {
  return el('table', { class: 'table table-sm align-middle mb-2', 'data-testid': testid },
            el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
            el('tbody', {}, rows));
}

function processCard(process, root, messages) {
  const urls = root.dataset;
  const versionRows = process.versions.map((v) => {
    const actions = [el('a', { class: 'btn btn-sm btn-outline-primary', href: urls.editUrl
      .replace('__key__', encodeURIComponent(process.key)).replace('__version__', v.version) },
                        fill(messages.openVersion, { version: v.version }))];
    const previous = process.versions.find((other) => other.version < v.version &&
      !process.versions.some((o) => o.version < v.version && o.version > other.version));
    if (previous) {
      actions.push(el('a', { class: 'btn btn-sm btn-outline-secondary ms-1', href: urls.diffUrl +
        '?key=' + encodeURIComponent(process.key) + '&from=' + previous.version + '&to=' + v.version },
                      fill(messages.compare, { from: previous.version, to: v.version })));
    }
    // The callee versions its call activities were deployed against (and keep running).
    const calls = (v.calls || []).map((c) => el('div', { class: 'small text-body-secondary', 'data-calls': c.key },
                                                fill(messages.calls, { key: c.key, version: c.version })));
    // Document control: pending versions wait for QA's e-signed approval (the review page) before they take effect.
    const status = el('a', { href: messages.reviewUrl.replace('__key__', encodeURIComponent(process.key))
      .replace('__version__', v.version), class: 'badge ' + (v.status === 'pending' ? 'text-bg-warning' : 'text-bg-light border'),
                             'data-status': v.status }, (messages.statuses || {})[v.status] || v.status);
    return el('tr', { 'data-version': v.version },
              el('td', {}, 'v' + v.version, calls), el('td', {}, status), el('td', {}, when(v.created_at)),
              el('td', {}, v.author || messages.system),
              el('td', {}, v.change_note || '—'), el('td', {}, String(v.instances_open ?? 0)), el('td', {}, actions));
  });
  const draftRows = process.drafts.map((d) => {
    const remove = el('button', { type: 'button', class: 'btn btn-sm btn-outline-danger ms-1' }, messages.deleteDraft);
    remove.addEventListener('click', async () => {
      if (!window.confirm(fill(messages.confirmDelete, { id: d.id }))) { return; }
      await call(urls.api + '/drafts/' + d.id, { method: 'DELETE' });
      window.location.reload();
    });
    const actions = [el('a', { class: 'btn btn-sm btn-outline-primary', href: urls.draftUrl.replace('__id__', d.id) },
                        fill(messages.openDraft, { id: d.id }))];
    if (d.base_version) {
      actions.push(el('a', { class: 'btn btn-sm btn-outline-secondary ms-1', href: urls.diffUrl + '?key=' +
        encodeURIComponent(process.key) + '&from=' + d.base_version + '&draft=' + d.id }, messages.compareDraft));
    }
    actions.push(remove);
    return el('tr', { 'data-draft': d.id }, el('td', {}, '#' + d.id + ' ' + (d.name || '')),
              el('td', {}, d.base_version ? 'v' + d.base_version : messages.newDiagram),
              el('td', {}, d.author || '—'), el('td', {}, when(d.updated_at)), el('td', {}, actions));
  });
  const card = el('section', { class: 'card mb-3', 'data-process': process.key },
                  el('div', { class: 'card-body' },
                     el('h2', { class: 'h5' }, process.name + ' ', el('code', { class: 'small' }, process.key))));
  const body = card.firstChild;
  if (versionRows.length) {
    body.append(el('h3', { class: 'h6' }, messages.versions),
                table(messages.versionHeaders, versionRows, 'versions-' + process.key));
  }
  if (draftRows.length) {
    body.append(el('h3', { class: 'h6' }, messages.drafts),
                table(messages.draftHeaders, draftRows, 'drafts-' + process.key));
  }
  return card;
}

async function importFile(root, form, messages) {
  const status = form.querySelector('[data-import-status]');
  const file = form.querySelector('input[type="file"]').files[0];
  if (!file) {
    status.textContent = messages.chooseFile;
    return;
  }
  try {
    const created = await call(root.dataset.api + '/drafts', { method: 'POST', xml: await file.text() });
    window.location.assign(root.dataset.draftUrl.replace('__id__', created.id));
  } catch (error) {
    const problems = error instanceof ApiError ? error.problems.map((p) => p.message) : [];
    status.textContent = [fill(messages.importFailed, { message: error.message })].concat(problems).join(' · ');
  }
}

export async function startIndex(root, config) {
  const messages = config.messages;
  const form = root.querySelector('[data-import-form]');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    importFile(root, form, messages);
  });
  const list = root.querySelector('[data-process-list]');
  try {
    const data = await call(root.dataset.api + '/processes');
    list.replaceChildren(...data.processes.map((process) => processCard(process, root, messages)));
    list.setAttribute('aria-busy', 'false');
    if (!data.processes.length) {
      list.append(el('p', { class: 'alert alert-light border' }, messages.noProcesses));
    }
    root.setAttribute('data-studio-state', 'ready');
  } catch (error) {
    list.replaceChildren(el('p', { class: 'alert alert-warning', role: 'status' },
                            fill(messages.loadFailed, { message: error.message })));
    list.setAttribute('aria-busy', 'false');
    root.setAttribute('data-studio-state', 'failed');
  }
}
