/* The studio's edit page: bpmn-js modeler with our moddle extension and properties provider; save as draft,
   validate (server lint + bpmnlint), export, deploy with a change note. */
import BpmnModeler from 'bpmn-js/lib/Modeler';
import { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule } from 'bpmn-js-properties-panel';

import { ApiError, call } from './api.js';
import { deriveFlowReferences, lintDefinitions } from './lint.js';
import QualiflowPropertiesProvider from './properties-provider.js';
import { keepUnresolvedReferences } from './references.js';
import spiffworkflow from './spiffworkflow.json';
import { fill } from './timer-preview.js';

const qualiflowModule = {
  __init__: ['qualiflowPropertiesProvider'],
  qualiflowPropertiesProvider: ['type', QualiflowPropertiesProvider]
};

function translateModule(dictionary) {
  return {
    translate: ['value', (template, replacements) => fill(dictionary[template] || template, replacements || {})]
  };
}

function escapeXml(text) {
  return String(text).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' }[c]));
}

/** A new executable process: one pool, one lane, a start event; the studio user draws the rest. */
export function newDiagramXml(key, name, lane) {
  const k = escapeXml(key);
  const n = escapeXml(name);
  const l = escapeXml(lane);
  return `<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
                  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
                  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="${k}_definitions" targetNamespace="https://qualiflow.example/bpmn">
  <bpmn:collaboration id="${k}_collaboration">
    <bpmn:participant id="${k}_participant" name="${n}" processRef="${k}"/>
  </bpmn:collaboration>
  <bpmn:process id="${k}" name="${n}" isExecutable="true">
    <bpmn:laneSet id="${k}_lanes">
      <bpmn:lane id="lane_${l}" name="${l}">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="${k}_diagram">
    <bpmndi:BPMNPlane id="${k}_plane" bpmnElement="${k}_collaboration">
      <bpmndi:BPMNShape id="${k}_participant_di" bpmnElement="${k}_participant" isHorizontal="true">
        <dc:Bounds x="120" y="80" width="900" height="250"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="lane_${l}_di" bpmnElement="lane_${l}" isHorizontal="true">
        <dc:Bounds x="150" y="80" width="870" height="250"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="202" y="187" width="36" height="36"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
`;
}

// Below this scale a diagram's labels are too small to read.
const READABLE_SCALE = 0.6;

class Editor {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.messages = config.messages;
    this.draftId = root.dataset.draftId || null;
    this.baseVersionId = root.dataset.baseVersionId || null;
    this.key = root.dataset.key || '';
    this.dirty = false;
    this.status = root.querySelector('[data-studio-status]');
    this.problemsBox = root.querySelector('[data-studio-problems]');
  }

  async start() {
    const api = this.root.dataset.api;
    this.setStatus(this.messages.loading);
    try {
      const [handlers, forms, xml] = await Promise.all([
        call(api + '/handlers'), call(api + '/forms'), this.loadSource()]);
      this.modeler = new BpmnModeler({
        container: this.root.querySelector('[data-studio-canvas]'),
        propertiesPanel: { parent: this.root.querySelector('[data-studio-properties]') },
        additionalModules: [BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, qualiflowModule,
                            translateModule(this.messages.bpmn)],
        moddleExtensions: { spiffworkflow },
        qualiflow: { handlers: handlers.handlers, forms: forms.forms, groups: this.config.groups, lang: this.config.lang,
                     messages: this.messages }
      });
      const { warnings } = await this.modeler.importXML(xml);
      this.importWarnings = warnings;
      keepUnresolvedReferences(warnings);
      this.fit();
      this.modeler.on('commandStack.changed', () => this.markDirty(true));
      // Leaving the page with unsaved edits asks first (the browser's own prompt).
      window.addEventListener('beforeunload', (event) => {
        if (this.dirty) {
          event.preventDefault();
          event.returnValue = '';
        }
      });
      this.bind();
      this.root.setAttribute('data-studio-state', 'ready');
      this.setStatus(this.messages.loaded);
    } catch (error) {
      this.root.setAttribute('data-studio-state', 'failed');
      this.setStatus(fill(this.messages.loadFailed, { message: error.message }), 'danger');
      if (window.console) { window.console.error(error); }
    }
  }

  loadSource() {
    const source = this.root.dataset.sourceUrl;
    if (source) {
      return call(source, { accept: 'application/xml' });
    }
    return Promise.resolve(newDiagramXml(this.root.dataset.newKey, this.root.dataset.newName,
                                         this.root.dataset.newLane));
  }

  bind() {
    const on = (name, handler) => {
      const button = this.root.querySelector('[data-action="' + name + '"]');
      if (button) { button.addEventListener('click', handler); }
    };
    on('save', () => this.save());
    on('validate', () => this.validate());
    on('export', () => this.exportFile());
    on('deploy', () => this.openDeploy());
    on('undo', () => this.modeler.get('commandStack').undo());
    on('redo', () => this.modeler.get('commandStack').redo());
    on('fit', () => this.fit());
    const dialog = this.root.querySelector('[data-studio-deploy]');
    dialog.querySelector('form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.deploy(dialog);
    });
    dialog.querySelector('[data-action="cancel-deploy"]').addEventListener('click', () => dialog.close());
    this.problemsBox.addEventListener('click', (event) => {
      const item = event.target.closest('[data-element-id]');
      if (item) { this.reveal(item.getAttribute('data-element-id')); }
    });
  }

  /** Fit the diagram into the canvas, right of the palette (which floats over the canvas's left edge); a large
   * diagram stops at a readable scale and opens at its left edge, where it begins. */
  fit() {
    const canvas = this.modeler.get('canvas');
    canvas.zoom('fit-viewport', 'auto');
    const palette = this.root.querySelector('.djs-palette');
    const paletteWidth = palette ? palette.offsetLeft + palette.offsetWidth : 0;
    const box = canvas.viewbox();
    if (box.scale < READABLE_SCALE) {
      canvas.viewbox({ x: box.inner.x - (paletteWidth + 20) / READABLE_SCALE, y: box.inner.y - 20 / READABLE_SCALE,
                       width: box.outer.width / READABLE_SCALE, height: box.outer.height / READABLE_SCALE });
      return;
    }
    const shift = paletteWidth / box.scale;
    canvas.viewbox({ x: box.x - shift, y: box.y, width: box.width + shift, height: box.height });
  }

  markDirty(dirty) {
    this.dirty = dirty;
    this.root.setAttribute('data-studio-dirty', dirty ? 'true' : 'false');
    const badge = this.root.querySelector('[data-studio-dirty-badge]');
    if (badge) { badge.hidden = !dirty; }
  }

  setStatus(text, tone) {
    this.status.textContent = text;
    this.status.className = 'small mb-2 text-' + (tone || 'body-secondary');
  }

  async exportXml() {
    const { xml } = await this.modeler.saveXML({ format: true });
    return xml;
  }

  /** Save the diagram as a draft (creating it the first time); resolve to the draft id. */
  async save() {
    const xml = await this.exportXml();
    const api = this.root.dataset.api;
    try {
      if (this.draftId) {
        await call(api + '/drafts/' + this.draftId, { method: 'PUT', xml });
      } else {
        const base = this.baseVersionId ? '?base=' + encodeURIComponent(this.baseVersionId) : '';
        const created = await call(api + '/drafts' + base, { method: 'POST', xml });
        this.draftId = String(created.id);
        this.root.dataset.draftId = this.draftId;
        const url = this.root.dataset.draftUrl.replace('__id__', this.draftId);
        window.history.replaceState(null, '', url);
        this.showDraft();
      }
    } catch (error) {
      this.setStatus(fill(this.messages.saveFailed, { message: error.message }), 'danger');
      if (error instanceof ApiError) { this.showProblems(error.problems, []); }
      throw error;
    }
    this.markDirty(false);
    this.setStatus(fill(this.messages.saved, { id: this.draftId, time: new Date().toLocaleTimeString() }),
                   'success');
    return this.draftId;
  }

  /** The page now edits a draft: the heading names it and the link to compare it with its base appears. */
  showDraft() {
    const title = this.root.querySelector('[data-studio-title]');
    if (title && this.root.dataset.draftTitle) {
      title.textContent = this.root.dataset.draftTitle.replace('__id__', this.draftId);
      document.title = title.textContent + ' · Qualiflow';
    }
    const compare = this.root.querySelector('[data-studio-compare]');
    if (compare && compare.dataset.href) {
      compare.href = compare.dataset.href.replace('__id__', this.draftId);
      compare.hidden = false;
    }
  }

  async validate() {
    const xml = await this.exportXml();
    this.setStatus(this.messages.validating);
    let result;
    try {
      result = await call(this.root.dataset.api + '/validate', { method: 'POST', xml });
    } catch (error) {
      // A diagram the server cannot even parse comes back as 400 with its problems.
      result = { valid: false, problems: error.problems && error.problems.length ? error.problems
        : [{ message: error.message, severity: 'error' }] };
    }
    let lint = [];
    try {
      const { rootElement } = await this.modeler.get('moddle').fromXML(xml, 'bpmn:Definitions');
      lint = await lintDefinitions(deriveFlowReferences(rootElement));
    } catch (error) {
      lint = [{ message: fill(this.messages.lintFailed, { message: error.message }), severity: 'warning' }];
    }
    this.showProblems(result.problems || [], lint);
    const errors = (result.problems || []).filter((p) => p.severity !== 'warning').length;
    this.setStatus(result.valid ? this.messages.valid : fill(this.messages.invalid, { n: errors }),
                   result.valid ? 'success' : 'danger');
    return result;
  }

  showProblems(problems, lint) {
    const box = this.problemsBox;
    box.hidden = false;
    const render = (list, selector, empty) => {
      const target = box.querySelector(selector);
      target.replaceChildren();
      if (!list.length) {
        const item = document.createElement('li');
        item.className = 'list-group-item text-body-secondary';
        item.textContent = empty;
        target.appendChild(item);
        return;
      }
      list.forEach((problem) => {
        const item = document.createElement('li');
        item.className = 'list-group-item d-flex gap-2 align-items-start';
        item.setAttribute('data-severity', problem.severity || 'error');
        const badge = document.createElement('span');
        badge.className = 'badge ' + (problem.severity === 'warning' ? 'text-bg-warning' : 'text-bg-danger');
        badge.textContent = problem.severity === 'warning' ? this.messages.warning : this.messages.error;
        item.appendChild(badge);
        if (problem.element_id) {
          const button = document.createElement('button');
          button.type = 'button';
          button.className = 'btn btn-link btn-sm p-0 font-monospace';
          button.setAttribute('data-element-id', problem.element_id);
          button.textContent = problem.element_id;
          button.title = this.messages.showElement;
          item.appendChild(button);
        }
        const text = document.createElement('span');
        text.textContent = problem.message + (problem.rule ? ' (' + problem.rule + ')' : '') +
          (problem.line ? ' · ' + fill(this.messages.line, { n: problem.line }) : '');
        item.appendChild(text);
        target.appendChild(item);
      });
    };
    render(problems, '[data-problems="server"]', this.messages.noProblems);
    render(lint, '[data-problems="lint"]', this.messages.noLintProblems);
  }

  /** Select an element and scroll the canvas to it; false when the diagram has no such element. */
  reveal(id) {
    const registry = this.modeler.get('elementRegistry');
    const element = registry.get(id);
    if (!element) {
      this.setStatus(fill(this.messages.elementNotShown, { id }), 'warning');
      return false;
    }
    const canvas = this.modeler.get('canvas');
    // Elements of a collapsed subprocess live on their own plane: open it first.
    const root = canvas.findRoot(element);
    if (root && root !== canvas.getRootElement()) {
      canvas.setRootElement(root);
    }
    this.modeler.get('selection').select(element);
    canvas.scrollToElement(element);
    return true;
  }

  async exportFile() {
    const xml = await this.exportXml();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([xml], { type: 'application/xml' }));
    const process = this.modeler.getDefinitions().get('rootElements').find((e) => e.$type === 'bpmn:Process');
    link.download = ((process && process.id) || this.key || 'diagram') + '.bpmn';
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  openDeploy() {
    const dialog = this.root.querySelector('[data-studio-deploy]');
    dialog.querySelector('[data-deploy-result]').replaceChildren();
    dialog.querySelector('[data-deploy-result]').hidden = true;
    dialog.showModal();
    dialog.querySelector('textarea').focus();
  }

  async deploy(dialog) {
    const note = dialog.querySelector('textarea').value.trim();
    const result = dialog.querySelector('[data-deploy-result]');
    const say = (text, tone) => {
      result.hidden = false;
      result.className = 'alert alert-' + tone + ' small';
      result.textContent = text;
    };
    if (!note) {
      say(this.messages.noteRequired, 'danger');
      return;
    }
    const submit = dialog.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const draftId = await this.save();
      const deployed = await call(this.root.dataset.api + '/drafts/' + draftId + '/deploy',
                                  { method: 'POST', json: { change_note: note, replace: dialog.querySelector('[name="replace"]').checked } });
      say(fill(this.messages.deployed, { key: deployed.key, version: deployed.version }), 'success');
      const link = document.createElement('a');
      link.href = deployed.url;
      link.className = 'ms-2';
      link.textContent = fill(this.messages.openVersion, { version: deployed.version });
      const edit = document.createElement('a');
      edit.href = this.root.dataset.editUrl.replace('__key__', encodeURIComponent(deployed.key))
        .replace('__version__', deployed.version);
      edit.className = 'ms-2';
      edit.textContent = fill(this.messages.editVersion, { version: deployed.version });
      result.append(link, edit);
      // The deployed draft is frozen: a later save starts a new draft.
      this.draftId = null;
      this.baseVersionId = null;
      delete this.root.dataset.draftId;
      this.setStatus(fill(this.messages.deployed, { key: deployed.key, version: deployed.version }), 'success');
      this.root.setAttribute('data-deployed-version', String(deployed.version));
    } catch (error) {
      if (error instanceof ApiError && error.problems.length) {
        this.showProblems(error.problems, []);
        say(this.messages.deployInvalid, 'danger');
      } else {
        say(fill(this.messages.deployFailed, { message: error.message }), 'danger');
      }
    } finally {
      submit.disabled = false;
    }
  }
}

export function startEditor(root, config) {
  const editor = new Editor(root, config);
  editor.ready = editor.start();
  return editor;
}
