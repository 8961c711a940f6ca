/* Our properties panel groups: what Qualiflow's engine reads from a diagram. User tasks: form, UI schema,
   due time, e-signature, evidence and the expression properties; lanes: the group; service tasks: the operator
   from the handler catalogue and its parameters per the handler's JSON Schema; script tasks and conditions;
   a readable preview under timer definitions. Texts come from the page (config.qualiflow.messages). */
import { getBusinessObject, is, isAny } from 'bpmn-js/lib/util/ModelUtil';
import { useService } from 'bpmn-js-properties-panel';
import {
  Group, SelectEntry, TextAreaEntry, TextFieldEntry, isSelectEntryEdited, isTextAreaEntryEdited,
  isTextFieldEntryEdited
} from '@bpmn-io/properties-panel';
import { h } from '@bpmn-io/properties-panel/preact';

import { checkParameter, describeDuration, describeTimer, fill, parseDuration } from './timer-preview.js';

const LOW_PRIORITY = 500; // after the BPMN provider, so its groups are there to extend
const SIGNATURE_MEANINGS = ['authored', 'reviewed', 'approved', 'released', 'responsibility'];
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TYPE_OF_SCHEMA = { string: 'str', integer: 'int', number: 'float', boolean: 'bool', array: 'list',
                         object: 'dict' };

// --- the spiffworkflow extension elements ----------------------------------------------------------------

function extensionValues(bo, type) {
  const extensions = bo.get('extensionElements');
  return extensions ? extensions.get('values').filter((value) => is(value, type)) : [];
}

export function getSpiffProperty(bo, name) {
  for (const container of extensionValues(bo, 'spiffworkflow:Properties')) {
    const found = container.get('properties').find((property) => property.name === name);
    if (found) {
      return found.value || '';
    }
  }
  return '';
}

function update(element, moddleElement, properties) {
  return { cmd: 'element.updateModdleProperties', context: { element, moddleElement, properties } };
}

/** Return [commands, extensionElements] that make sure bo has bpmn:extensionElements. */
function ensureExtensions(element, bo, bpmnFactory) {
  let extensions = bo.get('extensionElements');
  if (extensions) {
    return [[], extensions];
  }
  extensions = bpmnFactory.create('bpmn:ExtensionElements', { values: [] });
  extensions.$parent = bo;
  return [[update(element, bo, { extensionElements: extensions })], extensions];
}

function ensureExtension(element, bo, type, bpmnFactory, attrs) {
  const [commands, extensions] = ensureExtensions(element, bo, bpmnFactory);
  let found = extensions.get('values').find((value) => is(value, type));
  if (!found) {
    found = bpmnFactory.create(type, attrs);
    found.$parent = extensions;
    commands.push(update(element, extensions, { values: extensions.get('values').concat([found]) }));
  }
  return [commands, found];
}

function setSpiffProperty(services, element, name, value) {
  const { bpmnFactory, commandStack } = services;
  const bo = getBusinessObject(element);
  const text = (value || '').trim() ? value : '';
  const existing = extensionValues(bo, 'spiffworkflow:Properties')
    .map((container) => [container, container.get('properties').find((p) => p.name === name)])
    .find(([, property]) => property);
  let commands;
  if (existing) {
    const [container, property] = existing;
    commands = text ? [update(element, property, { value: text })]
      : [update(element, container, { properties: container.get('properties').filter((p) => p !== property) })];
  } else if (!text) {
    return;
  } else {
    let container;
    [commands, container] = ensureExtension(element, bo, 'spiffworkflow:Properties', bpmnFactory, { properties: [] });
    const property = bpmnFactory.create('spiffworkflow:Property', { name, value: text });
    property.$parent = container;
    commands.push(update(element, container, { properties: container.get('properties').concat([property]) }));
  }
  commandStack.execute('properties-panel.multi-command-executor', commands);
}

function getOperator(bo) {
  return extensionValues(bo, 'spiffworkflow:ServiceTaskOperator')[0] || null;
}

function operatorParameters(operator) {
  const list = operator && operator.get('parameterList');
  return list ? list.get('parameters') : [];
}

function parameterName(parameter) {
  return parameter.id || parameter.name || '';
}

function useServices() {
  return {
    bpmnFactory: useService('bpmnFactory'),
    commandStack: useService('commandStack'),
    modeling: useService('modeling'),
    debounce: useService('debounceInput'),
    qualiflow: useService('config.qualiflow')
  };
}

// --- entries --------------------------------------------------------------------------------------------------

function PropertyTextEntry(props) {
  const { element, id, property, label, describe, check } = props;
  const services = useServices();
  const messages = services.qualiflow.messages;
  const value = getSpiffProperty(getBusinessObject(element), property);
  return TextFieldEntry({
    element, id, label: messages.labels[label || property], debounce: services.debounce,
    description: describe ? describe(value, messages) : messages.hints[property],
    getValue: () => getSpiffProperty(getBusinessObject(element), property),
    setValue: (next) => setSpiffProperty(services, element, property, next),
    validate: check ? (next) => check(next, messages) : undefined
  });
}

function PropertySelectEntry(props) {
  const { element, id, property, options, check } = props;
  const services = useServices();
  const messages = services.qualiflow.messages;
  const current = getSpiffProperty(getBusinessObject(element), property);
  return SelectEntry({
    element, id, label: messages.labels[property],
    description: messages.hints[property],
    getValue: () => getSpiffProperty(getBusinessObject(element), property),
    setValue: (next) => setSpiffProperty(services, element, property, next),
    getOptions: () => options(services.qualiflow, current),
    validate: check ? (next) => check(next, services.qualiflow) : undefined
  });
}

function formOptions(suffix, required) {
  return (qualiflow, current) => {
    const messages = qualiflow.messages;
    const names = qualiflow.forms.map((form) => form.name).filter((name) => name.endsWith(suffix));
    const options = [{ value: '', label: required ? messages.chooseForm : messages.noUiSchema }];
    qualiflow.forms.filter((form) => names.includes(form.name)).forEach((form) => {
      const words = (qualiflow.lang === 'zh-CN' && form.title_zh) || form.title;
      const title = words ? form.name + ' - ' + words : form.name;
      options.push({ value: form.name, label: form.source === 'studio' ? fill(messages.studioForm, { name: title })
        : title });
    });
    if (current && !names.includes(current)) {
      options.push({ value: current, label: fill(messages.missingForm, { name: current }) });
    }
    return options;
  };
}

function checkForm(value, qualiflow) {
  if (!value) {
    return qualiflow.messages.formRequired;
  }
  return qualiflow.forms.some((form) => form.name === value) ? null
    : fill(qualiflow.messages.formMissing, { name: value });
}

function checkUiSchema(value, qualiflow) {
  return !value || qualiflow.forms.some((form) => form.name === value) ? null
    : fill(qualiflow.messages.formMissing, { name: value });
}

function signatureOptions(qualiflow) {
  const labels = qualiflow.messages.meanings;
  return [{ value: '', label: labels[''] }].concat(SIGNATURE_MEANINGS.map((m) => ({ value: m, label: labels[m] })));
}

function describeDue(value, messages) {
  if (!value) {
    return messages.hints.dueIn;
  }
  const words = describeDuration(value, messages.preview);
  return words ? fill(messages.dueInPreview, { duration: words }) : messages.hints.dueIn;
}

function checkDue(value, messages) {
  return !value || parseDuration(value) ? null : messages.invalidDuration;
}

function checkEvidence(value, messages) {
  return !value || value.split(',').every((kind) => IDENTIFIER.test(kind.trim())) ? null : messages.invalidEvidence;
}

function Note(props) {
  return h('div', { class: 'bio-properties-panel-entry qf-note', 'data-entry-id': props.id },
           h('p', { class: 'bio-properties-panel-description' }, props.text));
}

function laneOf(bo, elementRegistry) {
  const lane = elementRegistry.find((shape) => is(shape, 'bpmn:Lane') &&
    (getBusinessObject(shape).get('flowNodeRef') || []).includes(bo));
  return lane ? getBusinessObject(lane) : null;
}

function LaneNote(props) {
  const { element, id } = props;
  const qualiflow = useService('config.qualiflow');
  const lane = laneOf(getBusinessObject(element), useService('elementRegistry'));
  const group = lane && qualiflow.groups.find((g) => g.name === lane.name);
  const text = !lane ? qualiflow.messages.noLane
    : fill(qualiflow.messages.laneGroup, { group: group ? group.name + ' - ' + group.label : lane.name || lane.id });
  return Note({ id, text });
}

function LaneGroupEntry(props) {
  const { element, id } = props;
  const { modeling, qualiflow } = useServices();
  const messages = qualiflow.messages;
  const current = getBusinessObject(element).name || '';
  return SelectEntry({
    element, id, label: messages.labels.group, description: messages.hints.group,
    getValue: () => getBusinessObject(element).name || '',
    setValue: (value) => modeling.updateProperties(element, { name: value }),
    getOptions: () => {
      const options = [{ value: '', label: messages.chooseGroup }]
        .concat(qualiflow.groups.map((g) => ({ value: g.name, label: g.name + ' - ' + g.label })));
      if (current && !qualiflow.groups.some((g) => g.name === current)) {
        options.push({ value: current, label: fill(messages.unknownGroup, { name: current }) });
      }
      return options;
    },
    validate: (value) => (!value ? messages.groupRequired
      : qualiflow.groups.some((g) => g.name === value) ? null : fill(messages.unknownGroup, { name: value }))
  });
}

function OperatorEntry(props) {
  const { element, id } = props;
  const services = useServices();
  const { bpmnFactory, commandStack, qualiflow } = services;
  const messages = qualiflow.messages;
  const bo = getBusinessObject(element);
  const operator = getOperator(bo);
  const current = operator ? operator.id || '' : '';
  const handler = qualiflow.handlers.find((found) => found.id === current);
  const setValue = (value) => {
    const chosen = qualiflow.handlers.find((found) => found.id === value);
    let [commands, target] = [[], getOperator(bo)];
    if (!target) {
      [commands, target] = ensureExtension(element, bo, 'spiffworkflow:ServiceTaskOperator', bpmnFactory, { id: value });
    } else {
      commands.push(update(element, target, { id: value }));
    }
    // Keep the values of parameters the new handler has too; a fresh list for the rest.
    const old = {};
    operatorParameters(target).forEach((parameter) => { old[parameterName(parameter)] = parameter; });
    const schema = (chosen && chosen.parameters) || {};
    const list = bpmnFactory.create('spiffworkflow:Parameters', { parameters: [] });
    list.$parent = target;
    list.parameters = Object.keys(schema.properties || {}).filter((name) => old[name]).map((name) => {
      const parameter = bpmnFactory.create('spiffworkflow:Parameter', {
        id: name, type: old[name].type, value: old[name].value });
      parameter.$parent = list;
      return parameter;
    });
    commands.push(update(element, target, { parameterList: list }));
    commandStack.execute('properties-panel.multi-command-executor', commands);
  };
  return SelectEntry({
    element, id, label: messages.labels.operator,
    description: handler ? handler.description : messages.hints.operator,
    getValue: () => current,
    setValue,
    getOptions: () => {
      const options = [{ value: '', label: messages.chooseOperator }]
        .concat(qualiflow.handlers.map((found) => ({ value: found.id, label: found.id })));
      if (current && !handler) {
        options.push({ value: current, label: fill(messages.unknownOperator, { name: current }) });
      }
      return options;
    },
    validate: (value) => (!value ? messages.operatorRequired
      : qualiflow.handlers.some((found) => found.id === value) ? null
        : fill(messages.unknownOperator, { name: value }))
  });
}

function ResultVariableEntry(props) {
  const { element, id } = props;
  const { commandStack, debounce, qualiflow } = useServices();
  const operator = getOperator(getBusinessObject(element));
  return TextFieldEntry({
    element, id, label: qualiflow.messages.labels.resultVariable, debounce,
    description: qualiflow.messages.hints.resultVariable,
    getValue: () => (operator && operator.resultVariable) || '',
    setValue: (value) => commandStack.execute('element.updateModdleProperties', {
      element, moddleElement: operator, properties: { resultVariable: value || undefined } }),
    validate: (value) => (!value || IDENTIFIER.test(value) ? null : qualiflow.messages.invalidIdentifier)
  });
}

function ParameterEntry(props) {
  const { element, id, name, schema, required } = props;
  const { bpmnFactory, commandStack, debounce, qualiflow } = useServices();
  const messages = qualiflow.messages;
  const operator = getOperator(getBusinessObject(element));
  const find = () => operatorParameters(operator).find((parameter) => parameterName(parameter) === name);
  const setValue = (value) => {
    const parameter = find();
    if (parameter) {
      commandStack.execute('element.updateModdleProperties', {
        element, moddleElement: parameter, properties: { value } });
      return;
    }
    const commands = [];
    let list = operator.get('parameterList');
    if (!list) {
      list = bpmnFactory.create('spiffworkflow:Parameters', { parameters: [] });
      list.$parent = operator;
      commands.push(update(element, operator, { parameterList: list }));
    }
    const created = bpmnFactory.create('spiffworkflow:Parameter', {
      id: name, type: TYPE_OF_SCHEMA[schema.type] || 'str', value });
    created.$parent = list;
    commands.push(update(element, list, { parameters: list.get('parameters').concat([created]) }));
    commandStack.execute('properties-panel.multi-command-executor', commands);
  };
  const hint = [schema.description || schema.title, messages.expressionHint].filter(Boolean).join(' · ');
  return TextFieldEntry({
    element, id, debounce, description: hint,
    label: required ? fill(messages.requiredLabel, { label: name }) : name,
    getValue: () => { const parameter = find(); return parameter ? parameter.value || '' : ''; },
    setValue,
    validate: (value) => {
      const problem = checkParameter(value, schema, required);
      return problem ? fill(messages.parameterProblems[problem], { type: schema.type || '' }) : null;
    }
  });
}

function ExtraParameterEntry(props) {
  const { element, id, name } = props;
  const { commandStack, qualiflow } = useServices();
  const operator = getOperator(getBusinessObject(element));
  const remove = () => {
    const list = operator.get('parameterList');
    commandStack.execute('element.updateModdleProperties', {
      element, moddleElement: list,
      properties: { parameters: list.get('parameters').filter((p) => parameterName(p) !== name) } });
  };
  return h('div', { class: 'bio-properties-panel-entry has-error', 'data-entry-id': id },
           h('p', { class: 'bio-properties-panel-error' }, fill(qualiflow.messages.unknownParameter, { name })),
           h('button', { type: 'button', class: 'btn btn-sm btn-outline-danger', onClick: remove },
             fill(qualiflow.messages.removeParameter, { name })));
}

function ScriptEntry(props) {
  const { element, id } = props;
  const { debounce, modeling, qualiflow } = useServices();
  return TextAreaEntry({
    element, id, debounce, rows: 8, monospace: true, label: qualiflow.messages.labels.script,
    description: qualiflow.messages.hints.script,
    getValue: () => getBusinessObject(element).script || '',
    setValue: (value) => modeling.updateProperties(element, { script: value || undefined })
  });
}

function ConditionEntry(props) {
  const { element, id } = props;
  const { bpmnFactory, debounce, modeling, qualiflow } = useServices();
  const bo = getBusinessObject(element);
  return TextAreaEntry({
    element, id, debounce, rows: 3, monospace: true, label: qualiflow.messages.labels.condition,
    description: qualiflow.messages.hints.condition,
    getValue: () => (bo.conditionExpression && bo.conditionExpression.body) || '',
    setValue: (value) => {
      if (!value || !value.trim()) {
        modeling.updateProperties(element, { conditionExpression: undefined });
      } else if (bo.conditionExpression) {
        modeling.updateModdleProperties(element, bo.conditionExpression, { body: value });
      } else {
        modeling.updateProperties(element, {
          conditionExpression: bpmnFactory.create('bpmn:FormalExpression', { body: value }) });
      }
    }
  });
}

function timerOf(element) {
  const bo = getBusinessObject(element);
  return (bo.get('eventDefinitions') || []).find((definition) => is(definition, 'bpmn:TimerEventDefinition'));
}

function TimerPreview(props) {
  const { element, id } = props;
  const qualiflow = useService('config.qualiflow');
  const timer = timerOf(element);
  const kind = ['timeDate', 'timeDuration', 'timeCycle'].find((k) => timer && timer.get(k));
  const messages = qualiflow.messages;
  const result = kind ? describeTimer(kind, timer.get(kind).body, messages.preview)
    : { text: messages.preview.empty, valid: false };
  return h('div', { class: 'bio-properties-panel-entry' + (result.valid ? '' : ' has-error'), 'data-entry-id': id },
           h('p', { class: 'bio-properties-panel-description qf-timer-preview', 'data-testid': 'timer-preview' },
             fill(messages.timerPreview, { text: result.text })),
           h('p', { class: 'bio-properties-panel-description' }, messages.hints.timer));
}

// --- groups ---------------------------------------------------------------------------------------------------

function userTaskGroup(element, messages) {
  const text = (property, extra) => Object.assign({ id: 'qf-' + property, component: PropertyTextEntry, property,
                                                   isEdited: isTextFieldEntryEdited }, extra || {});
  return {
    id: 'qualiflow-user-task', label: messages.groups.userTask, component: Group, shouldOpen: true,
    entries: [
      text('name:zh-CN', { label: 'nameZh' }),
      { id: 'qf-lane', component: LaneNote },
      { id: 'qf-form', component: PropertySelectEntry, property: 'formJsonSchemaFilename',
        options: formOptions('.schema.json', true), check: checkForm, isEdited: isSelectEntryEdited },
      { id: 'qf-uischema', component: PropertySelectEntry, property: 'formUiSchemaFilename',
        options: formOptions('.uischema.json', false), check: checkUiSchema, isEdited: isSelectEntryEdited },
      text('dueIn', { describe: describeDue, check: checkDue }),
      { id: 'qf-signatureMeaning', component: PropertySelectEntry, property: 'signatureMeaning',
        options: signatureOptions, isEdited: isSelectEntryEdited },
      text('evidence', { check: checkEvidence }),
      text('fourEyesWith'),
      text('assignee'),
      text('dueDate'),
      text('subject')
    ].filter(Boolean)
  };
}

function serviceTaskGroup(element, qualiflow) {
  const messages = qualiflow.messages;
  const entries = [{ id: 'qf-operator', component: OperatorEntry, isEdited: isSelectEntryEdited }];
  const operator = getOperator(getBusinessObject(element));
  if (operator) {
    entries.push({ id: 'qf-resultVariable', component: ResultVariableEntry, isEdited: isTextFieldEntryEdited });
    const handler = qualiflow.handlers.find((found) => found.id === operator.id);
    const schema = (handler && handler.parameters) || {};
    const declared = Object.keys(schema.properties || {});
    const required = schema.required || [];
    declared.forEach((name) => entries.push({
      id: 'qf-parameter-' + name, component: ParameterEntry, name, schema: schema.properties[name],
      required: required.includes(name), isEdited: isTextFieldEntryEdited }));
    if (handler) {
      operatorParameters(operator).map(parameterName).filter((name) => !declared.includes(name))
        .forEach((name) => entries.push({ id: 'qf-extra-' + name, component: ExtraParameterEntry, name }));
    }
  }
  return { id: 'qualiflow-service-task', label: messages.groups.serviceTask, component: Group, shouldOpen: true, entries };
}

function isConditional(element) {
  const bo = getBusinessObject(element);
  return is(element, 'bpmn:SequenceFlow') && (bo.conditionExpression ||
    (bo.sourceRef && isAny(bo.sourceRef, ['bpmn:ExclusiveGateway', 'bpmn:InclusiveGateway']) &&
     bo.sourceRef.default !== bo));
}

export default class QualiflowPropertiesProvider {
  constructor(propertiesPanel, config) {
    this._qualiflow = config;
    propertiesPanel.registerProvider(LOW_PRIORITY, this);
  }

  getGroups(element) {
    return (groups) => {
      const qualiflow = this._qualiflow;
      const messages = qualiflow.messages;
      if (is(element, 'bpmn:UserTask')) {
        groups.splice(1, 0, userTaskGroup(element, messages));
      } else if (is(element, 'bpmn:ServiceTask')) {
        groups.splice(1, 0, serviceTaskGroup(element, qualiflow));
      } else if (is(element, 'bpmn:ScriptTask')) {
        groups.splice(1, 0, { id: 'qualiflow-script', label: messages.groups.script, component: Group, shouldOpen: true,
                              entries: [{ id: 'qf-script', component: ScriptEntry, isEdited: isTextAreaEntryEdited }] });
      } else if (is(element, 'bpmn:Lane')) {
        groups.splice(1, 0, { id: 'qualiflow-lane', label: messages.groups.lane, component: Group, shouldOpen: true,
                              entries: [{ id: 'qf-group', component: LaneGroupEntry, isEdited: isSelectEntryEdited }] });
      } else if (isConditional(element)) {
        groups.splice(1, 0, { id: 'qualiflow-condition', label: messages.groups.condition, component: Group, shouldOpen: true,
                              entries: [{ id: 'qf-condition', component: ConditionEntry,
                                          isEdited: isTextAreaEntryEdited }] });
      }
      const timer = groups.find((group) => group.id === 'timer');
      if (timer) {
        timer.entries.push({ id: 'qf-timer-preview', component: TimerPreview });
        timer.shouldOpen = true;
      }
      return groups;
    };
  }
}

QualiflowPropertiesProvider.$inject = ['propertiesPanel', 'config.qualiflow'];
