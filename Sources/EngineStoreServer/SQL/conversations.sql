-- Conversations and their messages (nof0's tables), and the `conversations:<model>` message list.

-- name: conversation_insert
-- The conversation, then its messages in order (prompt first, so ids follow the conversation),
-- with the metadata nof0's executor writes. One row per message.
WITH c AS (INSERT INTO conversations (model_id, topic) VALUES ($1, NULLIF($2, '')) RETURNING id),
t AS (SELECT COALESCE($3::bigint, (extract(epoch FROM now()) * 1000)::bigint) AS ts),
m AS (
    INSERT INTO conversation_messages (conversation_id, role, content, ts_ms, metadata)
    SELECT c.id, v.role, v.content, t.ts, v.meta || jsonb_build_object('conversationId', c.id)
    FROM c, t, (VALUES
        (1, 'system', $4::text, jsonb_build_object('model', $6::text, 'prompt_tokens', $7::bigint, 'total_tokens', $9::bigint)),
        (2, 'assistant', NULLIF($5::text, ''),
         jsonb_build_object('model', $6::text, 'completion_tokens', $8::bigint, 'total_tokens', $9::bigint))
    ) AS v(n, role, content, meta)
    WHERE v.content IS NOT NULL
    ORDER BY v.n
    RETURNING id, role
)
SELECT c.id AS conversation_id, t.ts AS ts_ms, m.id AS message_id, m.role FROM c, t, m ORDER BY m.id;

-- name: conversation_messages_recent
-- The newest $2 messages of the model's newest conversations that have messages: every one of the
-- newest N messages (by conversation id, then id) is in those N conversations.
SELECT m.conversation_id, m.id, m.role, m.content, m.ts_ms
FROM (SELECT c.id FROM conversations c
      WHERE c.model_id = $1 AND EXISTS (SELECT 1 FROM conversation_messages x WHERE x.conversation_id = c.id)
      ORDER BY c.id DESC LIMIT $2) AS c
JOIN conversation_messages m ON m.conversation_id = c.id
ORDER BY m.conversation_id DESC, m.id DESC LIMIT $2;

-- name: conversation_messages_existing
-- Which of the given ids are conversation_messages rows.
SELECT id FROM conversation_messages WHERE id = ANY($1::bigint[]);
