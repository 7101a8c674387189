//! HTTP/1.x messages, whichever side they are on: reading and parsing heads (`head`), framing
//! and copying bodies (`body`), and what a forwarded message loses and gains (`rewrite`). Used
//! by the client side (`http`) and by the parent-proxy client (`parent`) alike, so both frame
//! messages by the same rules.

pub mod body;
pub mod head;
pub mod rewrite;
