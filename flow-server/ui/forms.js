// Forms from JSON Schemas: a machine's input and a signal as fields, for types that have a
// schema; what the fields make is the JSON sent.
"use strict";

(function () {
  const { h } = flowCommon;

  // `GET /machines` carries the JSON Schema (2020-12, as schemars writes it) of a machine's
  // input and of each signal, for types that have one. A form is built from it: an object's
  // properties become labelled inputs (string → text, integer and number → number, boolean
  // → checkbox, an enum of strings → select), an enum with data (`"Approve"` or
  // `{"Reject": "why"}`) a select of its variants with the chosen one's value below, and
  // anything else (arrays, maps, nested shapes this does not know) a JSON textarea for that
  // field. The form writes the JSON it makes into the textarea below it, which is what is
  // sent, and reads back what is typed there.

  // `schema` with a `$ref` into the root's `$defs` followed.
  function resolve(root, schema) {
    for (let i = 0; schema && typeof schema.$ref === "string" && i < 16; i++) {
      const name = schema.$ref.startsWith("#/$defs/") ? decodeURIComponent(schema.$ref.slice(8)) : null;
      schema = name !== null && root.$defs ? root.$defs[name] : null;
    }
    return schema && typeof schema === "object" ? schema : {};
  }

  // The one type of `schema`, and whether it also allows null (`Option<T>`).
  function typeOf(schema) {
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    const real = types.filter((t) => t !== "null");
    return [real.length === 1 ? real[0] : null, types.includes("null")];
  }

  // The strings a plain enum allows (`enum`, or `oneOf` of string constants), or null.
  function stringChoices(schema) {
    if (Array.isArray(schema.enum) && schema.enum.length && schema.enum.every((v) => typeof v === "string")) {
      return schema.enum;
    }
    const alternatives = schema.oneOf || schema.anyOf;
    if (!Array.isArray(alternatives) || !alternatives.length) return null;
    const choices = [];
    for (const alternative of alternatives) {
      if (typeof alternative.const === "string") choices.push(alternative.const);
      else if (stringChoices(alternative)) choices.push(...stringChoices(alternative));
      else return null;
    }
    return choices;
  }

  // The variants of an externally tagged enum with data: [name, schema of its value or null].
  function variants(root, schema) {
    const alternatives = schema.oneOf || schema.anyOf;
    if (!Array.isArray(alternatives) || !alternatives.length) return null;
    const found = [];
    for (const raw of alternatives) {
      const alternative = resolve(root, raw);
      const unit = stringChoices(alternative) || (typeof alternative.const === "string" ? [alternative.const] : null);
      const names = Object.keys(alternative.properties || {});
      if (unit) found.push(...unit.map((name) => [name, null]));
      else if (typeOf(alternative)[0] === "object" && names.length === 1) found.push([names[0], alternative.properties[names[0]]]);
      else return null;
    }
    return found;
  }

  // A control for a value of `schema`: { node, get(), set(value), raw }. `get` returns
  // undefined for an optional field left empty and throws on a field that is not JSON.
  function widget(root, raw, path, optional) {
    const schema = resolve(root, raw);
    const [type, nullable] = typeOf(schema);
    const blank = optional || nullable;
    const empty = () => (nullable ? null : undefined);
    const choices = stringChoices(schema);
    if (choices) {
      const select = h("select", { "data-field": path },
        blank ? h("option", { value: "", text: "—" }) : null, choices.map((c) => h("option", { value: c, text: c })));
      return {
        node: select,
        get: () => (select.value === "" && blank ? empty() : select.value),
        set: (v) => { select.value = typeof v === "string" ? v : ""; },
      };
    }
    const tagged = !type && variants(root, schema);
    if (tagged) {
      const select = h("select", { "data-field": path }, tagged.map(([name]) => h("option", { value: name, text: name })));
      const values = new Map(tagged.filter(([, s]) => s).map(([name, s]) => [name, widget(root, s, `${path}.${name}`, false)]));
      const holder = h("div", { class: "schema-variant" });
      const show = () => {
        const chosen = values.get(select.value);
        holder.replaceChildren(...(chosen ? [h("label", { class: "schema-field" }, h("span", { text: select.value }), chosen.node)] : []));
      };
      select.addEventListener("change", show);
      show();
      return {
        node: h("div", { class: "schema-enum" }, select, holder),
        get: () => {
          const chosen = values.get(select.value);
          return chosen ? { [select.value]: chosen.get() } : select.value;
        },
        set: (v) => {
          const [name, inner] = typeof v === "string" ? [v, undefined] : v && typeof v === "object" ? Object.entries(v)[0] || [] : [];
          if (!tagged.some(([n]) => n === name)) return;
          select.value = name;
          show();
          if (values.has(name)) values.get(name).set(inner);
        },
      };
    }
    if (type === "string") {
      const input = h("input", { type: "text", "data-field": path, spellcheck: "false", placeholder: blank ? "optional" : null });
      return {
        node: input,
        get: () => (input.value === "" && blank ? empty() : input.value),
        set: (v) => { input.value = typeof v === "string" ? v : ""; },
      };
    }
    if (type === "integer" || type === "number") {
      const input = h("input", { type: "number", "data-field": path, step: type === "integer" ? "1" : "any",
        min: schema.minimum, max: schema.maximum, placeholder: blank ? "optional" : null });
      return {
        node: input,
        get: () => (input.value === "" ? (blank ? empty() : undefined) : Number(input.value)),
        set: (v) => { input.value = typeof v === "number" ? String(v) : ""; },
      };
    }
    if (type === "boolean") {
      const input = h("input", { type: "checkbox", "data-field": path });
      return { node: input, get: () => input.checked, set: (v) => { input.checked = v === true; } };
    }
    if (type === "null") {
      return { node: h("span", { class: "muted", text: "null" }), get: () => null, set: () => {} };
    }
    if (type === "object" && schema.properties && !schema.additionalProperties) {
      const required = new Set(schema.required || []);
      const fields = Object.entries(schema.properties).map(([name, s]) => [name, widget(root, s, `${path}.${name}`, !required.has(name))]);
      return {
        node: h("div", { class: "schema-object" }, fields.map(([name, w]) =>
          h("label", { class: "schema-field" }, h("span", { text: name + (required.has(name) ? "" : " (optional)") }), w.node))),
        get: () => {
          const value = {};
          for (const [name, w] of fields) {
            const v = w.get();
            if (v !== undefined) value[name] = v;
          }
          return value;
        },
        set: (v) => {
          for (const [name, w] of fields) w.set(v && typeof v === "object" ? v[name] : undefined);
        },
        object: true,
      };
    }
    // Anything else: that field as JSON.
    const area = h("textarea", { rows: 2, spellcheck: "false", "data-field": path, placeholder: "JSON" + (blank ? ", optional" : "") });
    return {
      node: area,
      get: () => {
        if (!area.value.trim()) return blank ? empty() : undefined;
        try {
          return JSON.parse(area.value);
        } catch (error) {
          throw new Error(`${path} is not JSON: ${error.message}`);
        }
      },
      set: (v) => { area.value = v === undefined ? "" : JSON.stringify(v); },
      raw: true,
    };
  }

  // The form for `schema` in front of the JSON textarea `json`, a value that is not an
  // object labelled `label` (or the schema's title): { node, read }. It writes
  // into `json` as it is edited (and at once, if `json` is empty); `read` fills it from
  // `json` (call it when `json` is typed in). Null when there is no schema, or nothing more than a textarea to build.
  function schemaForm(schema, json, id, label) {
    if (!schema || typeof schema !== "object") return null;
    const root = widget(schema, schema, id, false);
    if (root.raw) return null;
    const node = h("div", { class: "schema-form", id: id + "-fields" }, root.object ? root.node :
      h("label", { class: "schema-field" }, h("span", { text: label || schema.title || "value" }), root.node));
    const write = () => {
      try {
        const value = root.get();
        json.value = value === undefined ? "" : JSON.stringify(value);
        json.classList.remove("stale");
      } catch (error) {
        json.classList.add("stale");
      }
    };
    const read = () => {
      try {
        if (json.value.trim()) root.set(JSON.parse(json.value));
      } catch (_) {
        // Not JSON yet: the form stays as it was.
      }
    };
    node.addEventListener("input", write);
    node.addEventListener("change", write);
    // What the form shows is what is sent: an empty textarea starts with the form's value.
    if (json.value.trim()) read();
    else write();
    return { node, read };
  }

  window.flowForms = { schemaForm };
})();
