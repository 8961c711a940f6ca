// The studio's form editor: line numbers beside the two JSON textareas, a live preview (debounced POST that
// answers the inbox's HTML for the form and the problems found), problems listed with their JSON path and line
// (a click moves the cursor there), "try it" validation of the preview's values, and Save (PUT, Ctrl+S).
(function () {
  "use strict";

  var root = document.getElementById("form-editor");
  if (!root) {
    return;
  }
  var texts = JSON.parse(document.getElementById("form-editor-texts").textContent);
  var areas = {schema: document.getElementById("schema-text"), uischema: document.getElementById("uischema-text")};
  var problemList = document.getElementById("problems");
  var preview = document.getElementById("preview");
  var previewForm = document.getElementById("preview-form");
  var previewState = document.getElementById("preview-state");
  var checkResult = document.getElementById("check-result");
  var saveStatus = document.getElementById("save-status");
  var lang = root.getAttribute("data-lang") || "en";
  var sequence = 0;
  var timer = null;
  var dirty = false;
  var lastProblems = [];

  // The preview is never sent; discarding the studio's version asks first (no inline handlers: the CSP has none).
  previewForm.addEventListener("submit", function (event) { event.preventDefault(); });
  var discard = document.querySelector('form[data-testid="discard-form"]');
  if (discard) {
    discard.addEventListener("submit", function (event) {
      if (!window.confirm(discard.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return String(values[key]); });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : document.getElementById("csrf_token").value;
  }

  function send(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body)
    });
  }

  // -- line numbers ------------------------------------------------------------------------------------------

  function gutterOf(area) {
    return document.querySelector('[data-gutter-for="' + area.id + '"]');
  }

  function drawGutter(kind) {
    var area = areas[kind];
    var gutter = gutterOf(area);
    var count = area.value.split("\n").length;
    var marks = {};
    lastProblems.forEach(function (problem) {
      if (problem.file === kind && problem.line && marks[problem.line] !== "error") {
        marks[problem.line] = problem.severity;
      }
    });
    var lines = [];
    for (var line = 1; line <= count; line += 1) {
      var mark = marks[line] ? ' class="has-' + marks[line] + '"' : "";
      lines.push("<span" + mark + ">" + line + "</span>");
    }
    gutter.innerHTML = lines.join("");
    gutter.scrollTop = area.scrollTop;
  }

  function goTo(kind, line, column) {
    var area = areas[kind];
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i += 1) {
      start += lines[i].length + 1;
    }
    var lineText = lines[Math.min(line, lines.length) - 1] || "";
    var lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.focus();
    area.setSelectionRange(start + Math.max((column || 1) - 1, 0), start + lineText.length);
    area.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  // -- problems ------------------------------------------------------------------------------------------------

  function showProblems(problems) {
    lastProblems = problems;
    problemList.textContent = "";
    if (!problems.length) {
      var none = document.createElement("li");
      none.className = "text-success small";
      none.textContent = texts.no_problems;
      problemList.appendChild(none);
    }
    problems.forEach(function (problem) {
      var item = document.createElement("li");
      item.className = "mb-1";
      item.setAttribute("data-severity", problem.severity);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm w-100 " + (problem.severity === "error" ? "btn-outline-danger" : "btn-outline-warning");
      var where = texts[problem.file] + " " + (problem.line ? format(texts.line, {line: problem.line}) : "");
      var head = document.createElement("span");
      head.className = "fw-semibold";
      head.textContent = (problem.severity === "error" ? texts.error : texts.warning) + " · " + where + " · ";
      var path = document.createElement("span");
      path.className = "path";
      path.textContent = problem.path;
      var message = document.createElement("div");
      message.textContent = problem.message;
      button.append(head, path, message);
      if (problem.line) {
        button.addEventListener("click", function () { goTo(problem.file, problem.line, problem.column); });
      }
      item.appendChild(button);
      problemList.appendChild(item);
    });
    Object.keys(areas).forEach(function (kind) {
      var invalid = problems.some(function (p) { return p.file === kind && p.severity === "error"; });
      areas[kind].setAttribute("aria-invalid", invalid ? "true" : "false");
      drawGutter(kind);
    });
  }

  // -- preview -------------------------------------------------------------------------------------------------

  function previewValues() {
    var values = [];
    new FormData(previewForm).forEach(function (value, name) {
      values.push([name, String(value)]);
    });
    return values;
  }

  function refresh(check) {
    var mine = sequence += 1;
    return send("POST", root.getAttribute("data-preview-url"), {
      schema: areas.schema.value, uischema: areas.uischema.value, lang: lang, values: previewValues(), check: check
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (answer) {
      if (mine !== sequence) {
        return;  // a newer edit's answer is on its way
      }
      if (!answer.ok) {
        previewState.textContent = answer.body.message || "";
        return;
      }
      showProblems(answer.body.problems);
      checkResult.textContent = "";
      if (answer.body.valid) {
        preview.innerHTML = answer.body.html;
        previewState.textContent = "";
        if (check) {
          var failed = Object.keys(answer.body.form_errors).length > 0;
          checkResult.className = "small " + (failed ? "text-danger" : "text-success");
          checkResult.textContent = failed ? texts.checked_errors : texts.checked_ok;
        }
      } else {
        previewState.textContent = texts.stale;
      }
    });
  }

  function scheduleRefresh() {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { refresh(false); }, 400);
  }

  // -- save ----------------------------------------------------------------------------------------------------

  function setDirty(value) {
    dirty = value;
    if (dirty) {
      saveStatus.className = "small text-muted";
      saveStatus.textContent = texts.unsaved;
    }
  }

  function save() {
    saveStatus.className = "small text-muted";
    saveStatus.textContent = texts.saving;
    return send("PUT", root.getAttribute("data-save-url"), {
      schema: areas.schema.value, uischema: areas.uischema.value
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) {
          dirty = false;
          saveStatus.className = "small text-success";
          saveStatus.textContent = body.message;
        } else {
          if (body.problems) {
            showProblems(body.problems);
          }
          saveStatus.className = "small text-danger";
          saveStatus.textContent = response.status === 422 ? texts.refused
            : body.message || format(texts.failed, {status: response.status});
        }
      });
    }).catch(function () {
      saveStatus.className = "small text-danger";
      saveStatus.textContent = format(texts.failed, {status: "network"});
    });
  }

  Object.keys(areas).forEach(function (kind) {
    var area = areas[kind];
    area.addEventListener("input", function () {
      drawGutter(kind);
      setDirty(true);
      scheduleRefresh();
    });
    area.addEventListener("scroll", function () { gutterOf(area).scrollTop = area.scrollTop; });
    drawGutter(kind);
  });
  document.querySelectorAll('input[name="preview-lang"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      lang = radio.value;
      refresh(false);
    });
  });
  document.getElementById("check-values").addEventListener("click", function () { refresh(true); });
  document.getElementById("save-form").addEventListener("click", save);
  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      save();
    }
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  refresh(false);
})();
