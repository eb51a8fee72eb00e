// The new-job form, drawn from the chosen pipeline's JSON Schema: the fields a person
// must decide first, the rest under "More options"; a batch when Clips is over 1.

import { GenwireError } from "./genwire.js";
import { $, announce, describeError, el } from "./dom.js";
import { showStartedJob } from "./jobs-list.js";
import { showProject } from "./projects.js";
import { client, follow, pipelines } from "./state.js";

/** The type of a schema property: `{"type": X}` or `{"anyOf": [{X}, {"type": "null"}]}`. */
function fieldType(property) {
  if (property.type) return { ...property, optional: false };
  const options = (property.anyOf || []).filter((option) => option.type !== "null");
  return { ...property, ...(options[0] || { type: "string" }), optional: true };
}

/** The title pydantic gives a field that has none of its own: its name, title-cased
 * ("step_ms" → "Step Ms"). It is no label for a person. */
function machineTitle(name) {
  return name.replace(/[A-Za-z]+/g, (word) => word[0].toUpperCase() + word.slice(1).toLowerCase()).replaceAll("_", " ").trim();
}

const UNITS = { s: "seconds", ms: "ms", px: "pixels", bytes: "bytes" }; // a name's last word
const ACRONYMS = new Set(["fps", "id", "url", "json", "api", "http"]);

/** A person's label for a field: its schema title, unless that is only its name
 * title-cased, in which case one made from the name ("duration_s" → "Duration (seconds)"). */
function labelFor(name, property) {
  if (property.title && property.title !== machineTitle(name)) return property.title;
  const words = name.split("_").filter(Boolean);
  const unit = words.length > 1 && UNITS[words.at(-1)] ? ` (${UNITS[words.pop()]})` : "";
  const text = words.map((word) => (ACRONYMS.has(word.toLowerCase()) ? word.toUpperCase() : word.toLowerCase())).join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${unit}`;
}

function inputFor(name, property, required) {
  const spec = fieldType(property);
  const id = `input-${name}`;
  const help = property.description ? el("p", { class: "help", id: `${id}-help`, text: property.description }) : null;
  const common = { id, name, "aria-describedby": help ? `${id}-help` : null };
  let control;
  if (spec.type === "boolean") {
    control = el("input", { ...common, type: "checkbox", checked: property.default === true });
    control.dataset.type = "boolean"; // read as `checked`: its `value` is "on" either way
    return el("div", { class: "field" }, el("div", { class: "check" }, control, el("label", { for: id, text: labelFor(name, property) })), help);
  }
  if (spec.type === "object" || spec.type === "array") {
    // Free-form JSON (a provider's own input): written as text, parsed on Start.
    control = el("textarea", { ...common, rows: 3, spellcheck: "false", placeholder: spec.type === "object" ? '{"prompt": "…"}' : "[…]" });
    control.value = property.default && Object.keys(property.default).length ? JSON.stringify(property.default) : "";
  } else if (spec.enum) {
    control = el("select", common, ...spec.enum.map((value) => el("option", { value, text: value, selected: value === property.default })));
  } else if (spec.type === "integer" || spec.type === "number") {
    control = el("input", {
      ...common,
      type: "number",
      inputmode: spec.type === "integer" ? "numeric" : "decimal",
      min: spec.minimum ?? spec.exclusiveMinimum,
      max: spec.maximum ?? spec.exclusiveMaximum,
      step: spec.type === "integer" ? spec.multipleOf || 1 : "any",
      value: property.default ?? "",
      placeholder: spec.optional ? "optional" : null,
    });
  } else if ((spec.maxLength || 0) > 200) {
    control = el("textarea", { ...common, rows: 2, maxlength: spec.maxLength, required: required });
    control.value = property.default ?? "";
  } else {
    control = el("input", { ...common, type: "text", value: property.default ?? "", pattern: spec.pattern, maxlength: spec.maxLength, required: required });
  }
  control.dataset.type = spec.type;
  const label = el("label", { for: id, text: labelFor(name, property) });
  return el("div", { class: "field" }, label, control, help);
}

export function renderForm() {
  const pipeline = pipelines.get($("#pipeline").value);
  const schema = pipeline?.input_schema || { properties: {} };
  $("#pipeline-description").textContent = pipeline?.description || "";
  const required = new Set(schema.required || []);
  const entries = Object.entries(schema.properties || {});
  // First the fields a person must decide, those with no default (required, or filled
  // in by the server, as a provider's `input`); where every field has one, the first.
  const undecided = entries.filter(([, property]) => !("default" in property));
  const primary = new Set((undecided.length ? undecided : entries.slice(0, 1)).map(([name]) => name));
  const field = ([name, property]) => inputFor(name, property, required.has(name));
  $("#fields").replaceChildren(...entries.filter(([name]) => primary.has(name)).map(field));
  $("#more-fields").replaceChildren(...entries.filter(([name]) => !primary.has(name)).map(field));
  // Another pipeline's options start folded, whatever was open for the last one.
  $("#more-options").open = false;
  $("#more-options").hidden = !$("#more-fields").childElementCount;
}

/** The controls of the pipeline's input, shown or folded. */
function inputControls() {
  return document.querySelectorAll("#fields [name], #more-fields [name]");
}

/** Marks a control invalid, unfolding "More options" if it is there, so that it shows. */
function markControlInvalid(control) {
  control.setAttribute("aria-invalid", "true");
  if ($("#more-options").contains(control)) $("#more-options").open = true;
}

function readInput() {
  const input = {};
  for (const control of inputControls()) {
    control.removeAttribute("aria-invalid");
    const type = control.dataset.type;
    if (type === "boolean") {
      input[control.name] = control.checked;
      continue;
    }
    const raw = control.value.trim();
    if (raw === "") continue; // the pipeline's default applies
    if (type === "object" || type === "array") {
      try {
        input[control.name] = JSON.parse(raw);
      } catch {
        markControlInvalid(control);
        throw new FormError(`${control.name}: not valid JSON`);
      }
      continue;
    }
    input[control.name] = type === "integer" ? Number.parseInt(raw, 10) : type === "number" ? Number(raw) : raw;
  }
  return input;
}

function markInvalid(error) {
  for (const item of error.errors || []) {
    const name = String(item.field).replace(/^input\./, "");
    const control = [...inputControls()].find((candidate) => candidate.name === name);
    if (control) markControlInvalid(control);
  }
}

/** A batch's inputs. Where the pipeline takes a seed, each clip gets its own: the seed
 * set (else a random one) plus the clip's number, so the clips differ and each one can
 * be made again from the seed in its input. */
function batchInputs(pipeline, input, clips) {
  const seed = pipelines.get(pipeline)?.input_schema?.properties?.seed;
  if (!seed || fieldType(seed).type !== "integer") return Array.from({ length: clips }, () => input);
  const low = fieldType(seed).minimum ?? 0;
  const span = (fieldType(seed).maximum ?? 2 ** 32 - 1) - low + 1;
  const base = input.seed ?? low + (crypto.getRandomValues(new Uint32Array(1))[0] % span);
  return Array.from({ length: clips }, (_, index) => ({ ...input, seed: low + ((base - low + index) % span) }));
}

class FormError extends Error {}

export async function submitForm(event) {
  event.preventDefault();
  const button = $("#new-job button[type=submit]");
  const pipeline = $("#pipeline").value;
  let input;
  try {
    input = readInput();
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    $("#form-error").textContent = error.message;
    return;
  }
  const clips = Math.max(1, Number.parseInt($("#batch-size").value, 10) || 1);
  $("#form-error").textContent = "";
  button.disabled = true;
  try {
    if (clips > 1) {
      const project = await client.createProject(batchInputs(pipeline, input, clips).map((clip) => ({ pipeline, input: clip })));
      follow.addProject(project.id);
      showProject(project);
      announce(`Batch of ${clips} started`);
    } else {
      const job = await client.submit(pipeline, input);
      await showStartedJob(job);
      announce(`${pipeline} started`);
    }
  } catch (error) {
    $("#form-error").textContent = describeError(error);
    if (error instanceof GenwireError) markInvalid(error);
  } finally {
    button.disabled = false;
  }
}
