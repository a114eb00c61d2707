// reposync's own script: copy buttons. Loaded from this origin only (no inline script), and
// every page works without it.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field || !navigator.clipboard) return;
  navigator.clipboard.writeText(field.value).then(function () {
    button.textContent = "Copied";
  });
});

// A file input with data-fills="ID" loads the chosen file's text into the field ID (a private
// key to paste), so that uploading is pasting; without this script, pasting still works.
document.addEventListener("change", function (event) {
  var input = event.target;
  if (!input.matches || !input.matches("input[type=file][data-fills]") || !input.files[0]) return;
  var field = document.getElementById(input.getAttribute("data-fills"));
  if (!field) return;
  input.files[0].text().then(function (text) { field.value = text; });
});
