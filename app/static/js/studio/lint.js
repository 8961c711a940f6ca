/* The generic BPMN checks of bpmnlint ("recommended" rules), resolved statically so esbuild bundles them. */
import { Linter } from 'bpmnlint';
import recommended from 'bpmnlint/config/recommended';
import adHocSubProcess from 'bpmnlint/rules/ad-hoc-sub-process';
import conditionalFlows from 'bpmnlint/rules/conditional-flows';
import endEventRequired from 'bpmnlint/rules/end-event-required';
import eventBasedGateway from 'bpmnlint/rules/event-based-gateway';
import eventSubProcessTypedStartEvent from 'bpmnlint/rules/event-sub-process-typed-start-event';
import fakeJoin from 'bpmnlint/rules/fake-join';
import global from 'bpmnlint/rules/global';
import labelRequired from 'bpmnlint/rules/label-required';
import linkEvent from 'bpmnlint/rules/link-event';
import noBpmndi from 'bpmnlint/rules/no-bpmndi';
import noComplexGateway from 'bpmnlint/rules/no-complex-gateway';
import noDisconnected from 'bpmnlint/rules/no-disconnected';
import noDuplicateSequenceFlows from 'bpmnlint/rules/no-duplicate-sequence-flows';
import noGatewayJoinFork from 'bpmnlint/rules/no-gateway-join-fork';
import noImplicitEnd from 'bpmnlint/rules/no-implicit-end';
import noImplicitSplit from 'bpmnlint/rules/no-implicit-split';
import noImplicitStart from 'bpmnlint/rules/no-implicit-start';
import noInclusiveGateway from 'bpmnlint/rules/no-inclusive-gateway';
import noOverlappingElements from 'bpmnlint/rules/no-overlapping-elements';
import singleBlankStartEvent from 'bpmnlint/rules/single-blank-start-event';
import singleEventDefinition from 'bpmnlint/rules/single-event-definition';
import startEventRequired from 'bpmnlint/rules/start-event-required';
import subProcessBlankStartEvent from 'bpmnlint/rules/sub-process-blank-start-event';
import superfluousGateway from 'bpmnlint/rules/superfluous-gateway';
import superfluousLabel from 'bpmnlint/rules/superfluous-label';
import superfluousTermination from 'bpmnlint/rules/superfluous-termination';

const RULES = {
  'ad-hoc-sub-process': adHocSubProcess,
  'conditional-flows': conditionalFlows,
  'end-event-required': endEventRequired,
  'event-based-gateway': eventBasedGateway,
  'event-sub-process-typed-start-event': eventSubProcessTypedStartEvent,
  'fake-join': fakeJoin,
  global,
  'label-required': labelRequired,
  'link-event': linkEvent,
  'no-bpmndi': noBpmndi,
  'no-complex-gateway': noComplexGateway,
  'no-disconnected': noDisconnected,
  'no-duplicate-sequence-flows': noDuplicateSequenceFlows,
  'no-gateway-join-fork': noGatewayJoinFork,
  'no-implicit-end': noImplicitEnd,
  'no-implicit-split': noImplicitSplit,
  'no-implicit-start': noImplicitStart,
  'no-inclusive-gateway': noInclusiveGateway,
  'no-overlapping-elements': noOverlappingElements,
  'single-blank-start-event': singleBlankStartEvent,
  'single-event-definition': singleEventDefinition,
  'start-event-required': startEventRequired,
  'sub-process-blank-start-event': subProcessBlankStartEvent,
  'superfluous-gateway': superfluousGateway,
  'superfluous-label': superfluousLabel,
  'superfluous-termination': superfluousTermination
};

// The engine decides what is deployable (the server's Validate); these generic rules are advice, so the
// ones that only judge style or layout are warnings here.
const ADVICE = {
  'label-required': 'warn',
  'no-bpmndi': 'off',
  'no-overlapping-elements': 'off'
};

const resolver = {
  resolveRule(pkg, ruleName) {
    const rule = RULES[ruleName];
    if (!rule) {
      throw new Error('unknown bpmnlint rule ' + pkg + '/' + ruleName);
    }
    return rule;
  },
  resolveConfig() {
    return recommended;
  }
};

const linter = new Linter({ config: { extends: 'bpmnlint:recommended', rules: ADVICE }, resolver });

function flowElements(container, found) {
  (container.get('flowElements') || []).forEach((element) => {
    found.push(element);
    if (element.get('flowElements')) {
      flowElements(element, found);
    }
  });
  return found;
}

/**
 * Fill flow nodes' incoming/outgoing from the sequence flows: bpmnlint reads them, and files written by hand
 * (ours) leave them out. Done on a parsed copy, so the exported diagram stays as it was.
 */
export function deriveFlowReferences(definitions) {
  definitions.get('rootElements').filter((root) => root.$type === 'bpmn:Process').forEach((process) => {
    flowElements(process, []).filter((element) => element.$type === 'bpmn:SequenceFlow').forEach((flow) => {
      [[flow.sourceRef, 'outgoing'], [flow.targetRef, 'incoming']].forEach(([node, property]) => {
        if (node && !node.get(property).includes(flow)) {
          node.get(property).push(flow);
        }
      });
    });
  });
  return definitions;
}

/** Lint a diagram's definitions; resolve to [{rule, element_id, message, severity}] sorted by severity. */
export function lintDefinitions(definitions) {
  return linter.lint(definitions).then((results) => {
    const problems = [];
    Object.keys(results).forEach((rule) => {
      results[rule].forEach((report) => {
        if (report.category === 'rule-error') {
          return;
        }
        problems.push({ rule, element_id: report.id, message: report.message,
                        severity: report.category === 'error' ? 'error' : 'warning' });
      });
    });
    return problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  });
}
