// "Add row" for array tables drawn by templates/forms/_fields.html: clone the last row, clear it,
// renumber its field names (actions-0-owner -> actions-1-owner) and move the focus into it.
(function () {
  "use strict";

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  function addRow(table) {
    var body = table.tBodies[0];
    var last = body.rows[body.rows.length - 1];
    var row = last.cloneNode(true);
    var index = body.rows.length;
    var name = table.getAttribute("data-array-name");
    // Names, ids, label targets and describedby lists all carry the row index after the array name.
    var indexed = new RegExp("(^|\\s|field-)" + escapeRegExp(name) + "-\\d+-", "g");
    var renumber = function (value) {
      return value.replace(indexed, "$1" + name + "-" + index + "-");
    };

    row.querySelectorAll(".invalid-feedback").forEach(function (feedback) { feedback.remove(); });
    row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (element) {
      ["name", "id", "for"].forEach(function (attribute) {
        if (element.hasAttribute(attribute)) {
          element.setAttribute(attribute, renumber(element.getAttribute(attribute)));
        }
      });
      element.classList.remove("is-invalid");
      element.removeAttribute("aria-invalid");
      if (element.hasAttribute("aria-describedby")) {
        // The copied error messages are gone, so only help texts may still describe the field.
        var ids = renumber(element.getAttribute("aria-describedby")).split(/\s+/).filter(function (id) {
          return id && !/-error$/.test(id);
        });
        if (ids.length) {
          element.setAttribute("aria-describedby", ids.join(" "));
        } else {
          element.removeAttribute("aria-describedby");
        }
      }
    });
    row.querySelectorAll("input, textarea, select").forEach(function (control) {
      if (control.type === "checkbox" || control.type === "radio") {
        control.checked = false;
      } else if (control.tagName === "SELECT") {
        control.selectedIndex = 0;
      } else {
        control.value = "";
      }
    });
    row.querySelectorAll("[data-row-number]").forEach(function (number) {
      number.textContent = String(index + 1);
    });

    body.appendChild(row);
    var first = row.querySelector("input, textarea, select");
    if (first) {
      first.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-add-row]");
    var table = button && document.getElementById(button.getAttribute("data-add-row"));
    if (table) {
      addRow(table);
    }
  });
})();
