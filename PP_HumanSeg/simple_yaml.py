"""A reader for the block-style YAML subset that PaddleSeg's export writes (so PyYAML is not needed)."""


def parse_simple_yaml(text):
    """Parse the block-style YAML subset PaddleSeg writes (no PyYAML needed).

    Handles nested mappings, ``-`` sequences (also at the parent key's indentation,
    as ``yaml.dump`` writes them), flow lists ``[a, b]``, flow mappings ``{a: 1}``,
    comments, quoted strings, numbers, booleans and null. Raises ValueError naming
    the line for anything else.
    """
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ('', '---', '...') or raw.lstrip().startswith('#'):
            continue
        if '\t' in raw[:len(raw) - len(raw.lstrip())]:
            raise ValueError(f'line {number}: tabs are not allowed for indentation')
        body = _strip_comment(raw).rstrip()
        lines.append([len(body) - len(body.lstrip()), body.strip(), number])
    if not lines:
        return None
    value, end = _parse_block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f'line {lines[end][2]}: unexpected indentation')
    return value


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and (i == 0 or line[i - 1] in ' \t'):
            return line[:i]
    return line


def _is_item(text):
    return text == '-' or text.startswith('- ')


def _parse_block(lines, i, indent):
    if _is_item(lines[i][1]):
        return _parse_sequence(lines, i, indent)
    return _parse_mapping(lines, i, indent)


def _parse_sequence(lines, i, indent):
    items = []
    while i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
        rest = lines[i][1][1:].lstrip()
        if not rest:  # the item's value is the indented block below
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                value, i = _parse_block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = None, i + 1
        elif _key_split(rest) is not None or _is_item(rest):
            # "- key: value" opens a mapping (or "- - x" a sequence) whose column is
            # where "key" starts; re-read this line from there.
            column = indent + len(lines[i][1]) - len(rest)
            lines[i] = [column, rest, lines[i][2]]
            value, i = _parse_block(lines, i, column)
        else:
            value, i = _scalar(rest, lines[i][2]), i + 1
        items.append(value)
    return items, i


def _parse_mapping(lines, i, indent):
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i][1]):
        text, number = lines[i][1], lines[i][2]
        split = _key_split(text)
        if split is None:
            raise ValueError(f'line {number}: expected "key: value", got {text!r}')
        key, rest = split
        if key in mapping:
            raise ValueError(f'line {number}: duplicate key {key!r}')
        i += 1
        if rest:
            mapping[key] = _scalar(rest, number)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and _is_item(lines[i][1]))):
            mapping[key], i = _parse_block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    if i < len(lines) and lines[i][0] == indent:
        raise ValueError(f'line {lines[i][2]}: a list item where a "key: value" was expected')
    return mapping, i


def _key_split(text):
    """('key', 'rest') for "key: rest" / "key:", else None (quoted keys allowed)."""
    if text[:1] in '\'"':
        end = text.find(text[0], 1)
        if end < 0 or text[end + 1:end + 2] != ':' or text[end + 2:end + 3] not in ('', ' '):
            return None
        return text[1:end], text[end + 2:].strip()
    if text[:1] in '[{':
        return None
    for pos, ch in enumerate(text):
        if ch == ':' and (pos + 1 == len(text) or text[pos + 1] == ' '):
            return text[:pos].strip(), text[pos + 1:].strip()
    return None


def _split_flow(inner, number):
    """Split the inside of [...] or {...} at top-level commas."""
    parts, depth, quote, start = [], 0, None, 0
    for pos, ch in enumerate(inner):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch in '[{':
            depth += 1
        elif ch in ']}':
            depth -= 1
        elif ch == ',' and depth == 0:
            parts.append(inner[start:pos])
            start = pos + 1
    if depth or quote:
        raise ValueError(f'line {number}: unbalanced brackets or quotes')
    parts.append(inner[start:])
    parts = [p.strip() for p in parts]
    if parts == ['']:
        return []
    if '' in parts:
        raise ValueError(f'line {number}: empty element in a flow collection')
    return parts


def _scalar(text, number):
    if text.startswith('['):
        if not text.endswith(']'):
            raise ValueError(f'line {number}: unterminated list {text!r}')
        return [_scalar(part, number) for part in _split_flow(text[1:-1], number)]
    if text.startswith('{'):
        if not text.endswith('}'):
            raise ValueError(f'line {number}: unterminated mapping {text!r}')
        result = {}
        for part in _split_flow(text[1:-1], number):
            split = _key_split(part)
            if split is None:
                raise ValueError(f'line {number}: expected "key: value" in {text!r}')
            result[split[0]] = _scalar(split[1], number) if split[1] else None
        return result
    if text[:1] in '\'"':
        if len(text) < 2 or text[-1] != text[0]:
            raise ValueError(f'line {number}: unterminated string {text!r}')
        return text[1:-1]
    if text.startswith(('!', '&', '*', '|', '>')):
        raise ValueError(f'line {number}: YAML tags, anchors and block scalars are not supported ({text!r})')
    lowered = text.lower()
    if lowered in ('null', '~'):
        return None
    if lowered in ('true', 'false'):
        return lowered == 'true'
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
