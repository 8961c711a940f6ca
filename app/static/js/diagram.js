/* Draw the BPMN diagrams of a page with bpmn-js (window.BpmnJS, the navigated viewer): an instance's element
   states as markers, a version's open-instance counts as badges (the heat map), and zoom buttons. */
(function () {
  'use strict';

  var ZOOM_STEP = 1.25;
  // Fitting a large diagram into the page would make its labels too small to read: the opening view (and Fit)
  // stop at this scale and start at the diagram's left edge, where it begins; Zoom out shows the rest.
  var READABLE = 0.6;

  function readableFit(canvas) {
    canvas.zoom('fit-viewport', 'auto');
    var box = canvas.viewbox();
    if (box.scale < READABLE) {
      canvas.viewbox({ x: box.inner.x - 20, y: box.inner.y - 20,
                       width: box.outer.width / READABLE, height: box.outer.height / READABLE });
    }
  }

  // The viewer names steps and lanes in the page's language (the figure's data-labels: en or zh-CN).
  function withLabels(url, labels) {
    if (!labels) { return url; }
    return url + (url.indexOf('?') >= 0 ? '&' : '?') + 'labels=' + encodeURIComponent(labels);
  }
  var STATES = ['completed', 'active', 'waiting', 'error'];

  function load(url, json) {
    return fetch(url, {
      credentials: 'same-origin',
      // A refusal answers in JSON either way, with a message for the reader (a diagram too large to lay out).
      headers: { Accept: json ? 'application/json' : 'application/xml;q=0.9, application/json' }
    }).then(function (response) {
      if (!response.ok) {
        var type = response.headers.get('Content-Type') || '';
        var body = type.indexOf('json') >= 0 ? response.json().catch(function () { return null; }) : Promise.resolve(null);
        return body.then(function (found) {
          var error = new Error(url + ' answered ' + response.status);
          error.readerMessage = found && found.message;
          throw error;
        });
      }
      return json ? response.json() : response.text();
    });
  }

  function markStates(viewer, states) {
    var canvas = viewer.get('canvas');
    var registry = viewer.get('elementRegistry');
    Object.keys(states).forEach(function (id) {
      if (registry.get(id) && STATES.indexOf(states[id]) >= 0) {
        canvas.addMarker(id, 'state-' + states[id]);
      }
    });
  }

  function showCounts(viewer, counts, label) {
    var canvas = viewer.get('canvas');
    var overlays = viewer.get('overlays');
    var registry = viewer.get('elementRegistry');
    var ids = Object.keys(counts).filter(function (id) { return registry.get(id); });
    var most = ids.reduce(function (max, id) { return Math.max(max, counts[id]); }, 0);
    ids.forEach(function (id) {
      // Four heat levels, relative to the most crowded element.
      var level = Math.max(1, Math.ceil(4 * counts[id] / most));
      var badge = document.createElement('span');
      badge.className = 'diagram-count heat-' + level;
      badge.textContent = String(counts[id]);
      badge.title = label.replace('{n}', counts[id]);
      badge.setAttribute('data-element', id);
      overlays.add(id, 'heat-map', { position: { top: -10, right: 10 }, html: badge });
      canvas.addMarker(id, 'heat-' + level);
    });
  }

  function bindZoom(figure, viewer) {
    var canvas = viewer.get('canvas');
    figure.querySelectorAll('[data-zoom]').forEach(function (button) {
      button.addEventListener('click', function () {
        var action = button.getAttribute('data-zoom');
        if (action === 'fit') {
          readableFit(canvas);
        } else {
          canvas.zoom(canvas.zoom() * (action === 'in' ? ZOOM_STEP : 1 / ZOOM_STEP), 'auto');
        }
        figure.setAttribute('data-zoom-level', canvas.zoom().toFixed(3));
      });
    });
  }

  function failed(figure, error) {
    figure.querySelector('[data-diagram-canvas]').hidden = true;
    var message = figure.querySelector('[data-diagram-error]');
    if (error && error.readerMessage) { message.textContent = error.readerMessage + ' ' + message.textContent; }
    message.hidden = false;
    figure.querySelectorAll('[data-zoom]').forEach(function (button) { button.disabled = true; });
    figure.setAttribute('data-diagram-state', 'failed');
    if (window.console) { window.console.error(error); }
  }

  function show(figure) {
    if (typeof window.BpmnJS !== 'function') {
      failed(figure, new Error('bpmn-js is not loaded'));
      return;
    }
    var viewer = new window.BpmnJS({ container: figure.querySelector('[data-diagram-canvas]') });
    var statesUrl = figure.getAttribute('data-states-url');
    var heatUrl = figure.getAttribute('data-heat-url');
    var states = statesUrl ? load(statesUrl, true) : Promise.resolve(null);
    states.then(function (body) {
      var diagramUrl = body ? body.diagram_url : figure.getAttribute('data-diagram-url');
      return load(withLabels(diagramUrl, figure.getAttribute('data-labels')), false).then(function (xml) {
        return viewer.importXML(xml);
      }).then(function () {
        readableFit(viewer.get('canvas'));
        if (body) { markStates(viewer, body.states); }
        return heatUrl ? load(heatUrl, true) : null;
      });
    }).then(function (heat) {
      if (heat) { showCounts(viewer, heat.counts, figure.getAttribute('data-heat-label') || '{n}'); }
      bindZoom(figure, viewer);
      figure.setAttribute('data-zoom-level', viewer.get('canvas').zoom().toFixed(3));
      figure.setAttribute('data-diagram-state', 'ready');
    }).catch(function (error) { failed(figure, error); });
  }

  document.querySelectorAll('figure[data-diagram-url], figure[data-states-url]').forEach(show);
}());
