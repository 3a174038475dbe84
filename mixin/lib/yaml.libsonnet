// Text renderers: the rules file (comments, block expressions, folded descriptions) and JSON
// as `json.dumps(indent=2)` writes it, so the generated files read well and diff cleanly.
local util = import 'util.libsonnet';

{
  // Lines of at most 100 characters, never breaking inside a `{{ template }}`.
  wrap(text, width=100)::
    local words = std.filter(function(w) w != '', std.split(text, ' '));
    local n = std.length(words);
    local opens(w) = std.length(std.findSubstr('{{', w)) - std.length(std.findSubstr('}}', w));
    // Units: words, with the words of a `{{ template }}` glued into one.
    local glue(i, unit, depth, out) =
      if i == n then out + (if unit == '' then [] else [unit])
      else
        local w = words[i];
        local d = depth + opens(w);
        local u = if unit == '' then w else unit + ' ' + w;
        if d > 0 then glue(i + 1, u, d, out) else glue(i + 1, '', 0, out + [u]);
    local units = glue(0, '', 0, []);
    local m = std.length(units);
    local fill(i, line, out) =
      if i == m then out + [line]
      else if line == '' then fill(i + 1, units[i], out)
      else if std.length(line) + 1 + std.length(units[i]) <= width then fill(i + 1, line + ' ' + units[i], out)
      else fill(i + 1, units[i], out + [line]);
    fill(0, '', []),

  // Lines as a file's text: trailing empty lines dropped, one newline at the end.
  lines(ls)::
    local last = std.foldl(function(acc, i) if ls[i] != '' then i else acc, std.range(0, std.length(ls) - 1), -1);
    std.join('\n', ls[:last + 1]) + '\n',

  local lines(s) = std.split(std.rstripChars(s, '\n'), '\n'),
  local indent(pad, ls) = [pad + l for l in ls],

  // The `groups:` list of a rules file, every line indented by `pad`.
  groups(alerts, pad='')::
    local rule(r) =
      [pad + '      - alert: ' + r.alert]
      + indent(pad + '        # ', if r.comment == '' then [] else lines(r.comment))
      + [pad + '        expr: |']
      + indent(pad + '          ', lines(r.expr))
      + (if std.objectHas(r, 'for') then [pad + '        for: ' + r['for']] else [])
      + [pad + '        labels:']
      + [pad + '          %s: %s' % [k, r.labels[k]] for k in std.objectFields(r.labels)]
      + [
        pad + '        annotations:',
        pad + '          summary: ' + util.quote(r.annotations.summary),
        pad + '          description: >-',
      ]
      + indent(pad + '            ', $.wrap(r.annotations.description))
      + [pad + '          runbook_url: ' + util.quote(r.annotations.runbook_url), ''];
    [pad + 'groups:']
    + std.flattenArrays([
      [pad + '  - name: ' + g.name, pad + '    rules:']
      + std.flattenArrays([rule(r) for r in g.rules])
      + ['']
      for g in alerts.groups
    ]),

  // Python's json.dumps(value, indent=2, ensure_ascii=False), keys sorted.
  json(v, pad='')::
    local next = pad + '  ';
    if std.isObject(v) then
      if std.length(v) == 0 then '{}'
      else '{\n' + std.join(',\n', [
        next + util.quote(k) + ': ' + $.json(v[k], next)
        for k in std.objectFields(v)
      ]) + '\n' + pad + '}'
    else if std.isArray(v) then
      if std.length(v) == 0 then '[]'
      else '[\n' + std.join(',\n', [next + $.json(x, next) for x in v]) + '\n' + pad + ']'
    else if std.isString(v) then util.quote(v)
    else if std.isNumber(v) then util.num(v)
    else if v == null then 'null'
    else if v then 'true'
    else 'false',
}
