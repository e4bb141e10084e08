// The offline checks behind deploy/check-manifests.sh (modules from deploy/local/package.json).
//   node check-manifests.mjs k8s RENDERED.yaml      the objects `kubectl kustomize deploy/k8s` renders
//   node check-manifests.mjs compose FILE.yml...    every port a compose file publishes is bound to 127.0.0.1, and
//                                                   no secret has a default (compose must refuse to start without it)
// Prints one line per problem and exits 1 when there is any.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const problems = [];
const fail = (where, message) => problems.push(`${where}: ${message}`);

// Where the model (JSON schema + TypeScript type) of each apiVersion lives: Kubernetes' own API groups in
// kubernetes-models, custom resources in the package of their operator.
const crdPackages = { "keda.sh": "@kubernetes-models/keda" };
function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (crdPackages[group]) return `${crdPackages[group]}/${group}/${version}/${kind}`;
  return `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`;
}

async function checkKubernetes(file) {
  const docs = [];
  for (const d of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (d.errors.length) { fail(file, d.errors.map((e) => e.message).join("; ")); continue; }
    const o = d.toJS();
    if (!o) continue;
    // kustomize wraps a generated Secret's base64 at 70 columns; the API server's decoder (Go's base64) skips
    // line breaks, the schema's format "byte" does not: drop them, as the server does.
    for (const field of o.kind === "Secret" ? ["data"] : o.kind === "ConfigMap" ? ["binaryData"] : [])
      for (const [k, v] of Object.entries(o[field] ?? {})) if (typeof v === "string") o[field][k] = v.replace(/[\r\n]/g, "");
    docs.push({ o, id: `${o.kind}/${o.metadata?.name}` });
  }
  if (!docs.length) fail(file, "no objects rendered");

  // 1. Each object against the JSON schema of its kind (Kubernetes' OpenAPI, KEDA's CRDs): types, required
  //    fields, enums, formats. An apiVersion/kind without a schema is an error, not a skip.
  for (const d of docs) {
    d.module = modelModule(String(d.o.apiVersion), String(d.o.kind));
    let Model;
    try { Model = (await import(d.module))[d.o.kind]; } catch { /* reported below */ }
    if (!Model) { fail(d.id, `no schema for apiVersion ${d.o.apiVersion} kind ${d.o.kind} (${d.module})`); d.module = null; continue; }
    try { new Model(d.o).validate(); } catch (e) {
      for (const err of e.errors ?? [e]) fail(d.id, `${err.instancePath ?? ""} ${err.message}`.trim());
    }
  }

  // 2. Unknown fields (a misspelt or misplaced key, which the schemas allow): the same models' TypeScript types,
  //    each object written as a literal of its type, so the compiler's excess-property check reads every key.
  const typed = docs.filter((d) => d.module);
  const lines = [], starts = [];
  typed.forEach((d, i) => lines.push(`import type { I${d.o.kind} as T${i} } from "${d.module}";`));
  typed.forEach((d, i) => {
    starts.push(lines.length);
    lines.push(...`export const o${i}: T${i} = ${JSON.stringify(d.o, null, 2)};`.split("\n"));
  });
  const source = path.join(here, "rendered-manifests.ts"); // virtual: never written; here so imports resolve
  const options = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] };
  const host = ts.createCompilerHost(options);
  const text = lines.join("\n");
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (f, ...rest) => f === source ? ts.createSourceFile(f, text, ts.ScriptTarget.ES2022, true) : getSourceFile(f, ...rest);
  host.fileExists = (f) => f === source || fileExists(f);
  host.readFile = (f) => f === source ? text : readFile(f);
  for (const diag of ts.getPreEmitDiagnostics(ts.createProgram([source], options, host))) {
    const message = ts.flattenDiagnosticMessageText(diag.messageText, " ");
    if (diag.file?.fileName !== source) { fail("typescript", message); continue; }
    const line = diag.file.getLineAndCharacterOfPosition(diag.start).line;
    const i = starts.findLastIndex((s) => s <= line);
    fail(i < 0 ? "typescript" : typed[i].id, `${lines[line].trim()}  ${message}`);
  }

  // 3. References between the objects: what the pods and KEDA name must be among what is rendered (a generated
  //    Secret's name carries a hash: a reference kustomize does not rewrite points at nothing).
  const has = (kind, name) => docs.some((d) => d.o.kind === kind && d.o.metadata?.name === name);
  const secretKeys = (name) => {
    const s = docs.find((d) => d.o.kind === "Secret" && d.o.metadata?.name === name)?.o;
    return s ? new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})]) : null;
  };
  for (const { o, id } of docs) {
    const pod = o.spec?.template?.spec;
    if (pod) {
      const labels = o.spec.template.metadata?.labels ?? {};
      for (const [k, v] of Object.entries(o.spec.selector?.matchLabels ?? {}))
        if (labels[k] !== v) fail(id, `selector ${k}=${v} does not match the pod template's labels`);
      for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
        for (const from of c.envFrom ?? []) {
          if (from.secretRef && !from.secretRef.optional && !has("Secret", from.secretRef.name)) fail(id, `container ${c.name}: envFrom Secret ${from.secretRef.name} is not rendered`);
          if (from.configMapRef && !from.configMapRef.optional && !has("ConfigMap", from.configMapRef.name)) fail(id, `container ${c.name}: envFrom ConfigMap ${from.configMapRef.name} is not rendered`);
        }
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref && !ref.optional && !secretKeys(ref.name)?.has(ref.key)) fail(id, `container ${c.name}: env ${e.name}: Secret ${ref.name} key ${ref.key} is not rendered`);
        }
      }
      for (const v of pod.volumes ?? []) {
        if (v.secret && !v.secret.optional && !has("Secret", v.secret.secretName)) fail(id, `volume ${v.name}: Secret ${v.secret.secretName} is not rendered`);
        if (v.configMap && !v.configMap.optional && !has("ConfigMap", v.configMap.name)) fail(id, `volume ${v.name}: ConfigMap ${v.configMap.name} is not rendered`);
      }
    }
    if (o.kind === "Service" && o.spec?.selector) {
      const sel = Object.entries(o.spec.selector);
      if (!docs.some((d) => sel.every(([k, v]) => d.o.spec?.template?.metadata?.labels?.[k] === v))) fail(id, "its selector matches no pod template");
    }
    if (o.kind === "TriggerAuthentication")
      for (const ref of o.spec?.secretTargetRef ?? [])
        if (!secretKeys(ref.name)?.has(ref.key)) fail(id, `secretTargetRef: Secret ${ref.name} key ${ref.key} is not rendered`);
    if (o.kind === "ScaledObject") {
      const target = o.spec?.scaleTargetRef;
      if (target && !has(target.kind ?? "Deployment", target.name)) fail(id, `scaleTargetRef ${target.kind ?? "Deployment"}/${target.name} is not rendered`);
      for (const t of o.spec?.triggers ?? [])
        if (t.authenticationRef && !has(t.authenticationRef.kind ?? "TriggerAuthentication", t.authenticationRef.name)) fail(id, `trigger ${t.type}: authenticationRef ${t.authenticationRef.name} is not rendered`);
    }
  }
  return docs.length;
}

function checkCompose(files) {
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/\$\{(SDD_\w*(?:PASSWORD|SECRET_KEY|ADMIN_KEY))(:?[-=+])/g))
      fail(file, `\${${m[1]}${m[2]}...} gives a secret a default: use \${${m[1]}:?message}`);
    const compose = parse(text, { merge: true }) ?? {};
    for (const [name, service] of Object.entries(compose.services ?? {}))
      for (const p of service?.ports ?? []) {
        const ip = typeof p === "object" ? p.host_ip : /^(\d+\.\d+\.\d+\.\d+|\[[^\]]*\]):/.exec(String(p))?.[1];
        if (ip !== "127.0.0.1") fail(`${file}: ${name}`, `port ${JSON.stringify(p)} is published on ${ip ?? "every interface"}, not 127.0.0.1`);
      }
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "k8s" && args.length === 1) {
  const n = await checkKubernetes(args[0]);
  if (!problems.length) console.log(`${n} objects: schemas, fields and references ok`);
} else if (mode === "compose" && args.length) {
  checkCompose(args);
  if (!problems.length) console.log(`${args.map((f) => path.basename(f)).join(", ")}: every published port on 127.0.0.1, no secret with a default`);
} else {
  console.error("usage: node check-manifests.mjs k8s RENDERED.yaml | compose COMPOSE.yml...");
  process.exit(2);
}
for (const p of problems) console.log(`error ${p}`);
process.exit(problems.length ? 1 : 0);
