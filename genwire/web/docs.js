// The API's page: renders /openapi.json as a list of operations, each with its
// parameters, request body, answers and problem codes, then the schemas they name.
// A body that is one of several variants (a job: one per pipeline) shows each
// variant with its own fields (a pipeline's input), and the fields they share once.

const $ = (selector) => document.querySelector(selector);
const SCHEMA_REF = "#/components/schemas/";
let schemas = {};

// The schema a $ref names (the document's own components only), or the schema itself.
function resolve(schema) {
  return schema?.$ref?.startsWith(SCHEMA_REF) ? schemas[schema.$ref.slice(SCHEMA_REF.length)] : schema;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function anchor(method, path) {
  return `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;
}

// The constraints a schema's one-line type shows.
const LIMITS = [
  "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf",
  "minLength", "maxLength", "minItems", "maxItems", "maxProperties", "pattern", "format",
];

// A schema in one line: a link for a $ref, else its type with its constraints.
function typeOf(schema) {
  if (!schema) return el("span", { class: "muted", text: "any" });
  if (schema.$ref) {
    const name = schema.$ref.slice(SCHEMA_REF.length);
    return el("a", { href: `#schema-${name}`, text: name });
  }
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (schema[key]) {
      const parts = el("span");
      schema[key].forEach((part, index) => {
        if (index) parts.append(key === "allOf" ? " & " : " | ");
        parts.append(typeOf(part));
      });
      return parts;
    }
  }
  if ("const" in schema) return el("code", { text: JSON.stringify(schema.const) });
  if (schema.enum) return el("code", { text: schema.enum.map((v) => JSON.stringify(v)).join(" | ") });
  if (schema.type === "array") return el("span", {}, "array of ", typeOf(schema.items));
  const limits = LIMITS.filter((key) => schema[key] !== undefined).map((key) => `${key} ${schema[key]}`);
  const text = (schema.type || "any") + (limits.length ? ` (${limits.join(", ")})` : "");
  return el("span", { text });
}

// An object schema's properties as a list; variants as `variantsView`; anything
// else as its one-line type. `only`: those properties, and any that names an object
// schema with that schema's fields below it (a pipeline's input under `input`).
function schemaView(schema, only = null) {
  if (schema?.oneOf && schema.discriminator) return variantsView(schema);
  if (!schema || !schema.properties) return el("p", {}, typeOf(schema));
  const required = new Set(schema.required || []);
  const list = el("ul", { class: "fields" });
  for (const [name, property] of Object.entries(schema.properties)) {
    if (only && !only.includes(name)) continue;
    const target = only && property.$ref ? resolve(property) : null;
    list.append(
      el(
        "li",
        {},
        el("code", { text: name }),
        required.has(name) ? " (required) " : " ",
        typeOf(property),
        property.description ? el("span", { class: "muted", text: ` — ${property.description}` }) : null,
        target?.properties ? schemaView(target) : null,
      ),
    );
  }
  return list;
}

// One of several object schemas told apart by a property (its discriminator): one
// entry per variant with the fields that are its own, then the fields they share.
function variantsView(schema) {
  const key = schema.discriminator.propertyName;
  const variants = schema.oneOf.map(resolve).filter((variant) => variant?.properties);
  if (!variants.length) return el("p", {}, typeOf(schema));
  const same = (name) => {
    const first = JSON.stringify(variants[0].properties[name]);
    return variants.every((variant) => JSON.stringify(variant.properties[name]) === first);
  };
  const shared = Object.keys(variants[0].properties).filter((name) => name !== key && same(name));
  const view = el("div", { class: "variants" }, el("p", {}, "One of, by ", el("code", { text: key }), ":"));
  for (const variant of variants) {
    const own = Object.keys(variant.properties).filter((name) => name !== key && !shared.includes(name));
    view.append(
      el(
        "section",
        { class: "variant" },
        el("h4", {}, el("code", { text: `${key}: ${JSON.stringify(variant.properties[key]?.const)}` })),
        variant.description ? el("p", { class: "muted", text: variant.description }) : null,
        own.length ? schemaView(variant, own) : null,
      ),
    );
  }
  if (shared.length) view.append(el("p", { text: "Every one of them also takes:" }), schemaView(variants[0], shared));
  return view;
}

function parametersView(parameters) {
  if (!parameters.length) return null;
  const rows = parameters.map((param) =>
    el(
      "tr",
      {},
      el("td", {}, el("code", { text: param.name })),
      el("td", { text: param.in }),
      el("td", {}, typeOf(param.schema)),
      el("td", { text: param.description || "" }),
    ),
  );
  return el(
    "div",
    {},
    el("h3", { text: "Parameters" }),
    el("table", {}, el("tbody", {}, ...rows)),
  );
}

function responsesView(responses) {
  const rows = Object.entries(responses).map(([status, response]) => {
    const content = Object.entries(response.content || {});
    const cell = el("td");
    for (const [mediaType, { schema }] of content) {
      const codes = schema?.allOf?.[1]?.properties?.code?.enum;
      if (codes) {
        cell.append(el("span", { class: "codes" }, ...codes.map((code) => el("code", { text: code }))));
      } else {
        cell.append(el("span", { class: "muted", text: `${mediaType}: ` }), typeOf(schema));
      }
    }
    return el(
      "tr",
      {},
      el("td", {}, el("strong", { text: status })),
      el("td", { text: response.description }),
      cell,
    );
  });
  return el("div", {}, el("h3", { text: "Answers" }), el("table", {}, el("tbody", {}, ...rows)));
}

function bodyView(body) {
  const target = resolve(body);
  return el(
    "div",
    {},
    el("h3", { text: "Body (application/json)" }),
    el("p", {}, typeOf(body)),
    target?.oneOf && target.discriminator ? variantsView(target) : null,
  );
}

function operationView(path, method, operation) {
  const body = operation.requestBody?.content?.["application/json"]?.schema;
  return el(
    "section",
    { class: "operation", id: anchor(method, path) },
    el("h2", {}, el("span", { class: "method", text: method }), el("code", { text: path })),
    el("p", { class: "summary", text: operation.summary || "" }),
    operation.description ? el("p", { text: operation.description }) : null,
    parametersView(operation.parameters || []),
    body ? bodyView(body) : null,
    responsesView(operation.responses || {}),
  );
}

function render(document) {
  schemas = document.components?.schemas || {};
  const toc = el("ul");
  const operations = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      toc.append(el("li", {}, el("a", { href: `#${anchor(method, path)}`, text: `${method.toUpperCase()} ${path}` })));
      operations.push(operationView(path, method, operation));
    }
  }
  $("#toc").replaceChildren(toc);
  $("#operations").replaceChildren(...operations);
  const sections = Object.entries(schemas).map(([name, schema]) =>
    el(
      "section",
      { class: "schema", id: `schema-${name}` },
      el("h3", {}, el("code", { text: name })),
      schema.description ? el("p", { class: "muted", text: schema.description }) : null,
      schemaView(schema),
    ),
  );
  $("#schema-list").replaceChildren(...sections);
  $("#schemas").hidden = false;
  $("#status").textContent = `${document.info.title} ${document.info.version}: ${operations.length} operations`;
}

try {
  const answer = await fetch("/openapi.json");
  if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  render(await answer.json());
} catch (error) {
  $("#status").textContent = `Cannot load /openapi.json (${error.message}).`;
}
