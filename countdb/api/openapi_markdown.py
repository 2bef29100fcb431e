"""The OpenAPI document rendered as Markdown: docs/api-reference.md, the readable form linked from docs/api.md and docs/contract.md.

`python -m countdb.api.openapi_markdown > docs/api-reference.md` regenerates it; a unit test fails while the
file differs from the document, so the page cannot drift from /openapi.json.
"""

from __future__ import annotations

import json
import sys

from countdb.api.openapi import build_document


def render(document: dict) -> str:
    lines = [f"# {document['info']['title']} HTTP API reference", "",
             "Generated from `GET /openapi.json` (countdb/api/openapi.py) by "
             "`python -m countdb.api.openapi_markdown > docs/api-reference.md`; do not edit by hand.", "",
             document["info"]["description"], ""]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            lines += _operation(method.upper(), path, operation)
    lines += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += [f"### {name}", "", "```json", json.dumps(schema, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def _operation(method: str, path: str, operation: dict) -> list[str]:
    lines = [f"## `{method} {path}`", "", operation["summary"] + ".", ""]
    if "description" in operation:
        lines += [operation["description"], ""]
    if operation["parameters"]:
        lines += ["| Parameter | In | Required | Schema | Meaning |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {'yes' if p['required'] else 'no'} | {_schema(p['schema'])} | "
                  f"{_cell(p['description'])} |" for p in operation["parameters"]]
        lines.append("")
    if "requestBody" in operation:
        body = operation["requestBody"]
        lines += [f"Request body ({'required' if body['required'] else 'optional'}):", ""]
        for media_type, content in body["content"].items():
            lines.append(f"- `{media_type}`: {_body(content['schema'])}")
            if "example" in content:
                example = content["example"]
                text = example if isinstance(example, str) else json.dumps(example, ensure_ascii=False)
                lines += ["", "  ```", *(f"  {line}" for line in text.rstrip("\n").split("\n")), "  ```"]
        lines.append("")
    lines += ["| Status | Meaning | Content |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        content = ", ".join(f"`{media_type}` {_schema(c['schema'])}" if "schema" in c else f"`{media_type}`"
                            for media_type, c in response.get("content", {}).items())
        lines.append(f"| {status} | {_cell(response['description'])} | {content or 'none'} |")
    return lines + [""]


def _schema(schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return " or ".join(_schema(s) for s in schema[combined])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" if v else '`""`' for v in schema["enum"])
    text = "/".join(schema["type"]) if isinstance(schema.get("type"), list) else schema.get("type", "any")
    if "pattern" in schema:
        text += f" `{schema['pattern']}`"
    return _cell(text)


def _body(schema: dict) -> str:
    return _schema(schema) + (f": {schema['description']}" if "description" in schema else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.stdout.write(render(build_document()))
