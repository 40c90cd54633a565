// A minimal Grafana dashboard builder (no grafonnet: nothing to vendor). Panels are laid out
// in rows of `width` (24 = the grid's width) in the order given.
{
  datasourceVar:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
  },

  // A query variable over a label's values; "All" matches everything, absent labels too.
  labelVar(name, metric, selector, multi=true):: {
    name: name,
    label: name,
    type: 'query',
    datasource: { type: 'prometheus', uid: '${datasource}' },
    query: { query: 'label_values(%s{%s}, %s)' % [metric, selector, name], refId: 'vars' },
    definition: 'label_values(%s{%s}, %s)' % [metric, selector, name],
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: 0,
  },

  target(expr, legend, ref):: {
    datasource: { type: 'prometheus', uid: '${datasource}' },
    expr: expr,
    legendFormat: legend,
    refId: ref,
  },

  // kind: 'timeseries', 'stat', 'table' or 'bargauge'. targets: [[expr, legend], ...].
  panel(title, targets, unit='short', kind='timeseries', width=12, height=8, description='', instant=false):: {
    type: kind,
    title: title,
    description: description,
    datasource: { type: 'prometheus', uid: '${datasource}' },
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
    options: if kind == 'timeseries' then {
      legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    } else {},
    targets: [
      $.target(t[0], t[1], std.char(65 + i)) + (if instant then { instant: true, range: false, format: 'table' } else {})
      for i in std.range(0, std.length(targets) - 1)
      for t in [targets[i]]
    ],
    gridPos:: { w: width, h: height },
  },

  // Places panels left to right, wrapping at 24 columns, and numbers them.
  layout(panels)::
    std.foldl(
      function(acc, p)
        local w = p.gridPos.w;
        local wrap = acc.x + w > 24;
        local x = if wrap then 0 else acc.x;
        local y = if wrap then acc.y + acc.h else acc.y;
        local h = if wrap then p.gridPos.h else std.max(acc.h, p.gridPos.h);
        acc {
          x: x + w,
          y: y,
          h: h,
          out+: [p { id: std.length(acc.out) + 1, gridPos::: { x: x, y: y, w: w, h: p.gridPos.h } }],
        },
      panels,
      { x: 0, y: 0, h: 0, out: [] }
    ).out,

  dashboard(uid, title, description, vars, panels, tags, timezone):: {
    uid: uid,
    title: title,
    description: description,
    tags: tags,
    timezone: timezone,
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    time: { from: 'now-1h', to: 'now' },
    templating: { list: [$.datasourceVar] + vars },
    annotations: { list: [] },
    links: [],
    panels: $.layout(panels),
  },
}
