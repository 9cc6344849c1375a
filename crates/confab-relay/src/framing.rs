//! TURN over a byte stream (TCP or TLS, RFC 8656 section 12.5): STUN messages and
//! ChannelData messages follow each other with nothing between them, and a ChannelData
//! message is padded to a multiple of four bytes. Both ends of Confab's TURN over TCP use
//! this: the relay's stream listener and the peers' tunnels. What a message says is the
//! turn crates' business; this only finds where each one ends.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest message: a ChannelData header and the most data its length can name
/// (a STUN message is at most 20 + 65,535 bytes, a little less).
pub const MAX_MESSAGE: usize = 4 + u16::MAX as usize;

/// Why a stream cannot be read as TURN messages any more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The first byte starts neither a STUN message (`0x00`-`0x3f`) nor ChannelData on a
    /// channel a client may bind (`0x40`-`0x4f`): the stream is not TURN, or lost its
    /// place.
    #[error("neither a STUN nor a ChannelData message (first byte {0:#04x})")]
    NotTurn(u8),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How long the message starting with `header` is, and how many bytes it takes on a
/// stream (ChannelData's padding included).
fn lengths(header: [u8; 4]) -> Result<(usize, usize), FramingError> {
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] {
        0x00..=0x3f => Ok((20 + length, 20 + length)),
        0x40..=0x4f => Ok((4 + length, (4 + length).next_multiple_of(4))),
        _ => Err(FramingError::NotTurn(header[0])),
    }
}

/// Reads the next message into `buf` (replacing what it held). `Ok(false)` is the end of
/// the stream between two messages.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, FramingError> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let (message, on_stream) = lengths(header)?;
    buf.clear();
    buf.extend_from_slice(&header);
    buf.resize(on_stream, 0);
    reader.read_exact(&mut buf[4..]).await?;
    buf.truncate(message);
    Ok(true)
}

/// Writes one message (a STUN message or a ChannelData message as it would go in a
/// datagram), padded as a stream needs it. Does not flush.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> Result<(), FramingError> {
    let header: [u8; 4] = match message.first_chunk() {
        Some(header) => *header,
        None => return Err(FramingError::NotTurn(0)),
    };
    let (_, on_stream) = lengths(header)?;
    writer.write_all(message).await?;
    let padding = on_stream.saturating_sub(message.len());
    writer.write_all(&[0u8; 3][..padding.min(3)]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn messages_cross_a_stream_with_channel_data_padded() {
        let binding = {
            let mut m = vec![0x00, 0x01, 0x00, 0x04];
            m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            m.extend_from_slice(&[7; 12]);
            m.extend_from_slice(&[1, 2, 3, 4]);
            m
        };
        let channel_data = vec![0x40, 0x00, 0x00, 0x05, 9, 9, 9, 9, 9];
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_message(&mut a, &channel_data).await.unwrap();
        write_message(&mut a, &binding).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(read_message(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, channel_data, "padding dropped on the way in");
        assert!(read_message(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, binding, "no padding lost its place");
        assert!(!read_message(&mut b, &mut buf).await.unwrap(), "clean end");
    }

    #[tokio::test]
    async fn a_stream_that_is_not_turn_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            read_message(&mut b, &mut buf).await,
            Err(FramingError::NotTurn(b'P'))
        ));
        assert!(write_message(&mut a, b"\xc0\0\0\0").await.is_err());
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0x40, 0x00, 0x00, 0x08, 1, 2]).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(matches!(
            read_message(&mut b, &mut buf).await,
            Err(FramingError::Io(_))
        ));
    }
}
