//! Splitting a validated export request over its wire bytes, without decoding it.
//!
//! The three export requests share one shape: field 1 of the request is a repeated resource
//! message (`ResourceSpans` / `ResourceMetrics` / `ResourceLogs`), field 2 of that is a
//! repeated scope message, and field 2 of a scope is the repeated item (span, metric, log
//! record). A split takes whole resources from the front while they fit; the resource where
//! the limit falls is cut at a scope boundary, and the scope where it falls at an item
//! boundary, each cut half keeping the other fields (resource, scope, schema URL) of its
//! parent. Whole resources and items are copied as bytes; nothing is decoded, and the parts
//! hold exactly as many items as the prost split of the same request.
//!
//! Metrics are weighted by data points and cut between metrics (a metric's points stay
//! together, as in the decoded split); a metric larger than the limit goes alone into an
//! otherwise empty front, so that every split makes progress.

use bytes::{BufMut, Bytes, BytesMut};

use crate::DecodeError;

/// How an item (field 2 of a scope) counts towards the limit.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Weight {
    /// One per span or log record.
    One,
    /// The data points of a metric.
    MetricPoints,
}

/// The two halves of a split request and their item counts.
pub(crate) struct Split {
    pub front: Bytes,
    pub front_items: usize,
    pub rest: Bytes,
}

/// One field of a message: its number, wire type, the byte range of the whole field (key
/// included) and, for a length-delimited field, of its body.
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    body: std::ops::Range<usize>,
    end: usize,
}

/// Iterates the fields of the message in `buf`; the buffer was validated, so a malformed one
/// only ends the walk with an error rather than panicking.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated { offset: self.pos });
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::Varint { offset: self.pos })
    }

    fn advance(&mut self, n: u64) -> Result<usize, DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::LengthOverflow { offset: self.pos })?;
        if n > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated { offset: self.pos });
        }
        self.pos += n;
        Ok(self.pos)
    }

    fn next_field(&mut self) -> Result<Option<Field>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let mut body = self.pos..self.pos;
        match wire {
            0 => {
                self.varint()?;
            }
            1 => {
                self.advance(8)?;
            }
            5 => {
                self.advance(4)?;
            }
            2 => {
                let len = self.varint()?;
                let from = self.pos;
                body = from..self.advance(len)?;
            }
            _ => {
                return Err(DecodeError::WireType {
                    field: None,
                    wire,
                    offset: start,
                });
            }
        }
        Ok(Some(Field {
            number: key >> 3,
            wire,
            start,
            body,
            end: self.pos,
        }))
    }
}

impl Field {
    /// A length-delimited field with this number: a nested message of the OTLP tree.
    fn is(&self, number: u64) -> bool {
        self.number == number && self.wire == 2
    }
}

/// Data points of the metric in `buf`: the `data_points` (field 1) of its data message
/// (gauge 5, sum 7, histogram 9, exponential histogram 10, summary 11).
fn metric_points(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut n = 0;
    let mut fields = Fields::new(buf);
    while let Some(f) = fields.next_field()? {
        if f.wire == 2 && matches!(f.number, 5 | 7 | 9 | 10 | 11) {
            let mut inner = Fields::new(&buf[f.body]);
            while let Some(p) = inner.next_field()? {
                n += usize::from(p.is(1));
            }
        }
    }
    Ok(n)
}

fn item_weight(buf: &[u8], weight: Weight) -> Result<usize, DecodeError> {
    match weight {
        Weight::One => Ok(1),
        Weight::MetricPoints => metric_points(buf),
    }
}

/// Items in the message in `buf` whose field 2 holds the children, `depth` levels above the
/// items (0: a scope, 1: a resource).
fn weight_of(buf: &[u8], depth: u32, weight: Weight) -> Result<usize, DecodeError> {
    let mut n = 0;
    let mut fields = Fields::new(buf);
    while let Some(f) = fields.next_field()? {
        if f.is(2) {
            n += if depth == 0 {
                item_weight(&buf[f.body], weight)?
            } else {
                weight_of(&buf[f.body], depth - 1, weight)?
            };
        }
    }
    Ok(n)
}

/// Appends field `number` as a length-delimited field holding `body`.
fn put_message(out: &mut BytesMut, number: u64, body: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, body.len() as u64);
    out.put_slice(body);
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// One message cut in two: the bodies of its front and rest halves, the items in the front,
/// and whether the rest still has children.
struct Cut {
    front: BytesMut,
    rest: BytesMut,
    taken: usize,
    rest_has_children: bool,
}

/// Cuts the message in `buf` (a scope when `depth` is 0, a resource when 1) so that its front
/// holds at most `left` items, by the rules in the module comment; `empty` says whether the
/// whole front is empty so far (then a metric larger than `left` is taken, so that every
/// split makes progress). Fields other than the children (field 2) go to both halves.
fn cut(
    buf: &[u8],
    depth: u32,
    left: usize,
    empty: bool,
    weight: Weight,
) -> Result<Cut, DecodeError> {
    let mut header = BytesMut::new();
    let mut front = BytesMut::new();
    let mut rest = BytesMut::new();
    let (mut taken, mut children_taken, mut full) = (0usize, 0usize, false);
    let mut fields = Fields::new(buf);
    while let Some(f) = fields.next_field()? {
        let raw = &buf[f.start..f.end];
        if !f.is(2) {
            header.put_slice(raw);
            continue;
        }
        if full || taken >= left {
            full = true;
            rest.put_slice(raw);
            continue;
        }
        let body = &buf[f.body];
        if depth == 0 {
            let w = item_weight(body, weight)?;
            if taken + w > left && !(empty && children_taken == 0) {
                full = true;
                rest.put_slice(raw);
            } else {
                front.put_slice(raw);
                taken += w;
                children_taken += 1;
            }
            continue;
        }
        let w = weight_of(body, depth - 1, weight)?;
        if taken + w <= left {
            front.put_slice(raw);
            taken += w;
            continue;
        }
        let inner = cut(body, depth - 1, left - taken, empty && taken == 0, weight)?;
        full = true;
        if inner.taken == 0 {
            // Its first metric does not fit: the scope stays whole for the next part.
            rest.put_slice(raw);
            continue;
        }
        taken += inner.taken;
        put_message(&mut front, 2, &inner.front);
        if inner.rest_has_children {
            put_message(&mut rest, 2, &inner.rest);
        }
    }
    let rest_has_children = !rest.is_empty();
    let mut front_msg = BytesMut::with_capacity(header.len() + front.len());
    front_msg.put_slice(&header);
    front_msg.put_slice(&front);
    let mut rest_msg = BytesMut::with_capacity(header.len() + rest.len());
    rest_msg.put_slice(&header);
    rest_msg.put_slice(&rest);
    Ok(Cut {
        front: front_msg,
        rest: rest_msg,
        taken,
        rest_has_children,
    })
}

/// Splits the validated request `bytes` (holding `items` items) so that the front holds at
/// most `max` items; `None` when it already does.
pub(crate) fn split_front(
    bytes: &Bytes,
    items: usize,
    max: usize,
    weight: Weight,
) -> Result<Option<Split>, DecodeError> {
    if items <= max {
        return Ok(None);
    }
    // As the decoded split: at least one item goes to the front.
    let max = max.max(1);
    let mut taken = 0usize;
    let mut fields = Fields::new(bytes);
    let mut boundary = bytes.len();
    while let Some(f) = fields.next_field()? {
        if taken >= max {
            boundary = f.start;
            break;
        }
        if !f.is(1) {
            continue;
        }
        let w = weight_of(&bytes[f.body.clone()], 1, weight)?;
        if taken + w <= max {
            taken += w;
            continue;
        }
        // The limit falls inside this resource: rebuild it as two.
        let inner = cut(&bytes[f.body.clone()], 1, max - taken, taken == 0, weight)?;
        if inner.taken == 0 {
            boundary = f.start;
            break;
        }
        let mut front = BytesMut::with_capacity(f.start + inner.front.len() + 10);
        front.put_slice(&bytes[..f.start]);
        put_message(&mut front, 1, &inner.front);
        let tail = &bytes[f.end..];
        let mut rest = BytesMut::with_capacity(inner.rest.len() + 10 + tail.len());
        if inner.rest_has_children {
            put_message(&mut rest, 1, &inner.rest);
        }
        rest.put_slice(tail);
        return Ok(Some(Split {
            front: front.freeze(),
            front_items: taken + inner.taken,
            rest: rest.freeze(),
        }));
    }
    // The limit falls between resources: both halves share the original buffer.
    Ok(Some(Split {
        front: bytes.slice(..boundary),
        front_items: taken,
        rest: bytes.slice(boundary..),
    }))
}

/// The value of the length-delimited field `number` of the message in `buf` (its last
/// occurrence, as protobuf merges), or an empty slice when it has none.
pub(crate) fn bytes_field(buf: &[u8], number: u64) -> Result<&[u8], DecodeError> {
    let mut value: &[u8] = &[];
    let mut fields = Fields::new(buf);
    while let Some(f) = fields.next_field()? {
        if f.is(number) {
            value = &buf[f.body.clone()];
        }
    }
    Ok(value)
}

/// Routes each item (field 2 of a scope) of the validated request `bytes` to one of `parts`
/// parts: `route` gets the item's bytes and returns a part index (clamped to the last part).
/// Each part keeps the other fields of the resources and scopes its items came from
/// (resource, scope, schema URLs), written before their children; resources and scopes left
/// without items are dropped, as are unknown fields of the request itself (as a decode
/// would). A part that gets no item is `None`. Item bytes are copied, never decoded.
pub(crate) fn partition(
    bytes: &[u8],
    parts: usize,
    route: &mut dyn FnMut(&[u8]) -> Result<usize, DecodeError>,
) -> Result<Vec<Option<(Bytes, usize)>>, DecodeError> {
    let parts = parts.max(1);
    let mut out = vec![BytesMut::new(); parts];
    let mut counts = vec![0usize; parts];
    // Per part: the children of the resource and of the scope being walked.
    let mut resources = vec![BytesMut::new(); parts];
    let mut scopes = vec![BytesMut::new(); parts];
    let mut body = BytesMut::new();
    let mut top = Fields::new(bytes);
    while let Some(r) = top.next_field()? {
        if !r.is(1) {
            continue;
        }
        let rbuf = &bytes[r.body.clone()];
        let mut rhead = BytesMut::new();
        resources.iter_mut().for_each(BytesMut::clear);
        let mut in_resource = Fields::new(rbuf);
        while let Some(s) = in_resource.next_field()? {
            if !s.is(2) {
                rhead.put_slice(&rbuf[s.start..s.end]);
                continue;
            }
            let sbuf = &rbuf[s.body.clone()];
            let mut shead = BytesMut::new();
            scopes.iter_mut().for_each(BytesMut::clear);
            let mut in_scope = Fields::new(sbuf);
            while let Some(i) = in_scope.next_field()? {
                if !i.is(2) {
                    shead.put_slice(&sbuf[i.start..i.end]);
                    continue;
                }
                let p = route(&sbuf[i.body.clone()])?.min(parts - 1);
                scopes[p].put_slice(&sbuf[i.start..i.end]);
                counts[p] += 1;
            }
            for (scope, resource) in scopes.iter().zip(resources.iter_mut()) {
                if !scope.is_empty() {
                    body.clear();
                    body.put_slice(&shead);
                    body.put_slice(scope);
                    put_message(resource, 2, &body);
                }
            }
        }
        for (resource, part) in resources.iter().zip(out.iter_mut()) {
            if !resource.is_empty() {
                body.clear();
                body.put_slice(&rhead);
                body.put_slice(resource);
                put_message(part, 1, &body);
            }
        }
    }
    Ok(out
        .into_iter()
        .zip(counts)
        .map(|(b, n)| (n > 0).then(|| (b.freeze(), n)))
        .collect())
}
