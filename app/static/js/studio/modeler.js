/* Entry of the studio bundle (esbuild -> app/static/vendor/studio/studio.js): starts the page's part (the
   editor, the version diff or the index) and exposes it as window.qualiflowStudio for tests and the console. */
import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css';
import '@bpmn-io/properties-panel/dist/assets/properties-panel.css';

import { startDiff } from './diff.js';
import { startEditor } from './editor.js';
import { startIndex } from './studio-index.js';

function pageConfig() {
  const block = document.getElementById('studio-config');
  return block ? JSON.parse(block.textContent) : {};
}

function start() {
  const root = document.querySelector('[data-studio]');
  if (!root) {
    return;
  }
  const config = pageConfig();
  const studio = { page: root.dataset.studio };
  window.qualiflowStudio = studio;
  if (studio.page === 'editor') {
    studio.editor = startEditor(root, config);
  } else if (studio.page === 'diff') {
    studio.diff = startDiff(root).catch((error) => {
      root.setAttribute('data-studio-state', 'failed');
      root.querySelector('[data-studio-status]').textContent = error.message;
      throw error;
    });
  } else if (studio.page === 'index') {
    studio.index = startIndex(root, config);
  }
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
