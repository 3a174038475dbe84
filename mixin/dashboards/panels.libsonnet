// Grafana 10+ dashboard JSON from small panel tables: one datasource variable, a flow layout,
// the same field defaults everywhere.
local ds = { type: 'prometheus', uid: '${datasource}' };
local refs = 'ABCDEFGH';

{
  ds:: ds,
  green:: [['green', null]],
  oneIsBad:: [['green', null], ['red', 1]],
  upDownMapping:: [{
    type: 'value',
    options: {
      '0': { text: 'down', color: 'red', index: 0 },
      '1': { text: 'up', color: 'green', index: 1 },
    },
  }],

  // One panel: its kind (stat, timeseries, bargauge, state-timeline, table), texts, unit,
  // queries ([expr, legend] pairs) and size; the optional fields below.
  panel(kind, title, description, unit, queries, w=8, h=8):: {
    kind: kind,
    title: title,
    description: description,
    unit: unit,
    queries: queries,
    w: w,
    h: h,
    steps: $.green,
    stack: false,
    minmax: null,
    instant: false,
    bars: false,
    decimals: null,
    mappings: [],
    overrides: [],
    extra: {},  // merged into the panel as is
  },

  thresholds(steps):: { mode: 'absolute', steps: [{ color: s[0], value: s[1] } for s in steps] },

  target(expr, legend, ref, instant, table):: {
    datasource: ds,
    editorMode: 'code',
    expr: expr,
    legendFormat: if legend == '' then '__auto' else legend,
    range: !instant,
    instant: instant,
    refId: ref,
  } + (if table then { format: 'table' } else {}),

  render(p, id, x, y)::
    local table = p.kind == 'table';
    local timeseries = p.kind == 'timeseries';
    local fill = if p.bars then 60 else if p.stack then 20 else 5;
    local defaults = {
      unit: p.unit,
      thresholds: $.thresholds(p.steps),
      mappings: p.mappings,
      color: { mode: if timeseries then 'palette-classic' else 'thresholds' },
    }
    + (if p.minmax != null then { min: p.minmax[0], max: p.minmax[1] } else {})
    + (if p.decimals != null then { decimals: p.decimals } else {})
    + (
      if timeseries then {
        custom: {
          drawStyle: if p.bars then 'bars' else 'line',
          lineWidth: 1,
          fillOpacity: fill,
          showPoints: 'never',
          spanNulls: false,
          axisSoftMin: 0,
          stacking: { mode: if p.stack then 'normal' else 'none', group: 'A' },
          thresholdsStyle: { mode: if std.length(p.steps) == 1 then 'off' else 'line' },
        },
      }
      else if p.kind == 'state-timeline' then { mappings: $.upDownMapping, custom: { fillOpacity: 80, lineWidth: 0 } }
      else if table then { custom: { align: 'auto', cellOptions: { type: 'auto' } } }
      else {}
    );
    local graphOptions = {
      legend: { showLegend: true, displayMode: 'list', placement: 'bottom', calcs: [] },
      tooltip: { mode: 'multi', sort: 'desc' },
    };
    local reduce = {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      orientation: if p.kind == 'bargauge' then 'horizontal' else 'auto',
    };
    local options =
      if p.kind == 'stat' then reduce { colorMode: 'value', graphMode: 'area', justifyMode: 'auto', textMode: 'auto' }
      else if p.kind == 'bargauge' then reduce { displayMode: 'gradient', showUnfilled: true, valueMode: 'color' }
      else if p.kind == 'state-timeline' then graphOptions { mergeValues: true, showValue: 'never', alignValue: 'left', rowHeight: 0.9 }
      else if table then { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'] } }
      else graphOptions;
    {
      type: p.kind,
      id: id,
      title: p.title,
      description: p.description,
      datasource: ds,
      gridPos: { h: p.h, w: p.w, x: x, y: y },
      fieldConfig: { defaults: defaults, overrides: p.overrides },
      options: options,
      targets: [
        $.target(p.queries[i][0], p.queries[i][1], refs[i], p.instant || table, table)
        for i in std.range(0, std.length(p.queries) - 1)
      ],
    } + p.extra,

  // Rows ([title, panels] pairs) of panels, left to right, wrapping at Grafana's 24 columns.
  layout(rows)::
    local placeRow(state, row) =
      local title = row[0];
      local head = {
        type: 'row',
        id: state.id,
        title: title,
        collapsed: false,
        panels: [],
        gridPos: { h: 1, w: 24, x: 0, y: state.y },
      };
      local placed = std.foldl(
        function(s, p)
          local wrap = s.x + p.w > 24;
          local x = if wrap then 0 else s.x;
          local y = if wrap then s.y + s.rowH else s.y;
          local rowH = if wrap then 0 else s.rowH;
          { id: s.id + 1, x: x + p.w, y: y, rowH: std.max(rowH, p.h), out: s.out + [$.render(p, s.id, x, y)] },
        row[1],
        { id: state.id + 1, x: 0, y: state.y + 1, rowH: 0, out: [] },
      );
      { id: placed.id, y: placed.y + placed.rowH, out: state.out + [head] + placed.out };
    std.foldl(placeRow, rows, { id: 1, y: 0, out: [] }).out,

  variableDs():: {
    type: 'datasource',
    name: 'datasource',
    label: 'Data source',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
    options: [],
    skipUrlSync: false,
  },

  variableQuery(name, label, query, multi):: {
    type: 'query',
    name: name,
    label: label,
    datasource: ds,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: true,
    allValue: '.*',
    current: if multi then { selected: true, text: ['All'], value: ['$__all'] } else {},
    hide: 0,
    regex: '',
    options: [],
    skipUrlSync: false,
  },

  dashboard(uid, title, description, rows, variables):: {
    uid: uid,
    title: title,
    description: description,
    tags: ['upload-status', 'upload-status-exporter'],
    schemaVersion: 39,
    version: 1,
    id: null,
    editable: true,
    graphTooltip: 1,
    refresh: '1m',
    timezone: '',
    fiscalYearStartMonth: 0,
    liveNow: false,
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      }],
    },
    links: [{
      type: 'dashboards',
      title: 'Upload status',
      tags: ['upload-status'],
      asDropdown: false,
      includeVars: true,
      keepTime: true,
      icon: 'external link',
      targetBlank: false,
      tooltip: '',
      url: '',
    }],
    templating: { list: variables },
    panels: $.layout(rows),
  },

  // The matcher of one state or a `|` list of states.
  st(states):: if std.length(std.findSubstr('|', states)) > 0 then 'state=~"%s"' % states else 'state="%s"' % states,

  stat(title, description, unit, expr, w=4):: $.panel('stat', title, description, unit, [[expr, '']], w=w, h=4),

  override(name, props):: {
    matcher: { id: 'byName', options: name },
    properties: [{ id: std.strReplace(k, '_', '.'), value: props[k] } for k in std.objectFields(props)],
  },

  // Every provider-specific counter, as its provider declares it: [provider, spec] pairs.
  providerCounters(providers):: [[p, spec] for p in std.objectFields(providers) for spec in providers[p].counters],

  counterPanel(provider, spec, by, legend, rate)::
    local labels = if spec.label != '' then [spec.label] else [];
    $.panel(
      'timeseries',
      if spec.title != '' then spec.title else spec.name,
      '%s Per second; %s only.' % [spec.help, provider],
      spec.unit,
      [['sum by (%s) (%s)' % [std.join(', ', [by] + labels), rate], legend + std.join('', [' {{%s}}' % l for l in labels])]],
    ),
}
