// Path templates in AuthorizationPolicy `paths` (Istio 1.19+): `{*}` matches
// exactly one path segment, `{**}` any number of segments and may only end
// the template. Istio hands them to Envoy's URI template matcher, which
// allows the RFC 3986 segment characters below in a matched segment. The
// template becomes an anchored regex here, once, at compile time.

const SEGMENT_CHARS = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";
const ONE_SEGMENT = `[${SEGMENT_CHARS}]+`;
const ANY_SEGMENTS = `[${SEGMENT_CHARS}/]*`;

export function isPathTemplate(value: string): boolean {
  return value.includes('{*}') || value.includes('{**}');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function compilePathTemplate(template: string): RegExp {
  // Istio rewrites `{*}`→`*` and `{**}`→`**`, and a bare `*`/`**` segment in a
  // template is an operator too, so both spellings compile the same way.
  const segments = template.split('/');
  const out = segments.map((seg) => {
    if (seg === '{**}' || seg === '**') return ANY_SEGMENTS;
    if (seg === '{*}' || seg === '*') return ONE_SEGMENT;
    return escapeRegex(seg);
  });
  return new RegExp(`^${out.join('/')}$`);
}
