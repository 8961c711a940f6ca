/* Keep references that name no element of the file. SpiffWorkflow reads some BPMN references as plain names:
   <bpmn:loopDataInputRef>actions</bpmn:loopDataInputRef> names a list in the process data. bpmn-moddle drops a
   reference it cannot resolve, so saving would lose it; a detached placeholder with that id keeps it. */

export function keepUnresolvedReferences(warnings) {
  let kept = 0;
  (warnings || []).forEach((warning) => {
    const { element, property, value } = warning;
    if (!element || !property || !value || !/^unresolved reference/.test(warning.message || '')) {
      return;
    }
    const descriptor = element.$descriptor.propertiesByName[property];
    if (!descriptor) {
      return;
    }
    const placeholder = element.$model.create(descriptor.type, { id: value });
    if (descriptor.isMany) {
      element.get(descriptor.name).push(placeholder);
    } else {
      element.set(descriptor.name, placeholder);
    }
    kept += 1;
  });
  return kept;
}
