// Small helpers shared by the rules and the dashboards.
{
  // `metric{m1, m2}` from non-empty matchers; `metric` when there are none.
  sel(metric, matchers)::
    local ms = std.filter(function(m) m != '', matchers);
    if ms == [] then metric else metric + '{' + std.join(', ', ms) + '}',

  // A number as Python prints it: 0.1, not 0.10000000000000001.
  num(n):: if n == std.floor(n) then std.toString(n) else std.format('%.15g', n),

  // A JSON string, which YAML reads as a double-quoted scalar. std.escapeStringJson goes
  // character by character; the texts here hold no control character but newline and tab.
  quote(s)::
    local r(s, from, to) = std.strReplace(s, from, to);
    '"' + r(r(r(r(s, '\\', '\\\\'), '"', '\\"'), '\n', '\\n'), '\t', '\\t') + '"',

  // Regular-expression metacharacters escaped, as Python's re.escape does for code values.
  reEscape(s):: std.join('', [
    if std.member('\\.^$*+?{}[]|()-#&~ ', c) then '\\' + c else c
    for c in std.stringChars(s)
  ]),

  // Each provider's throttling codes as a PromQL label matcher ({} for a provider with none).
  throttlingMatchers(providers):: {
    [p]: (
      local codes = std.sort(providers[p].throttling_codes);
      if std.length(codes) == 1 then 'code=' + std.escapeStringJson(codes[0])
      else 'code=~' + std.escapeStringJson(std.join('|', std.map($.reEscape, codes)))
    )
    for p in std.objectFields(providers)
    if providers[p].throttling_codes != []
  },
}
