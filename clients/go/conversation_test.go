package enginestore

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RecordConversation (method 39) against hand-assembled bytes (engine_store_v1.proto, field numbers 1..10).
func TestRecordConversationEncoding(t *testing.T) {
	full := &RecordConversationRequest{IdempotencyKey: "k", ModelID: "m", Prompt: "hi", Response: Ptr("ok"),
		PromptTokens: Ptr(uint32(300)), CompletionTokens: Ptr(uint32(5)), TotalTokens: Ptr(uint32(305)),
		ModelName: Ptr("g"), TimestampMs: Ptr(int64(1700000000000)), Topic: Ptr("t")}
	want := "0a016b" + "12016d" + "1a026869" + "22026f6b" + "28ac02" + "3005" + "38b102" + "420167" +
		"4880a0abfef962" + "520174"
	if got := hex.EncodeToString(Marshal(full)); got != want {
		t.Errorf("full request\n got %s\nwant %s", got, want)
	}
	// Optional fields absent are not sent; required ones always are, even empty.
	if got := hex.EncodeToString(Marshal(&RecordConversationRequest{IdempotencyKey: "k", ModelID: "m"})); got != "0a016b12016d1a00" {
		t.Errorf("minimal request: %s", got)
	}
	var back RecordConversationRequest
	b, _ := hex.DecodeString(want)
	if err := Unmarshal(b, &back); err != nil || !bytes.Equal(Marshal(&back), b) || *back.TotalTokens != 305 {
		t.Errorf("round trip: %v %+v", err, back)
	}

	var r RecordConversationResponse
	b, _ = hex.DecodeString("080e" + "1080a0abfef962")
	if err := Unmarshal(b, &r); err != nil || r.ConversationID != 7 || r.TimestampMs != 1700000000000 {
		t.Errorf("response: %+v %v", r, err)
	}
	b, _ = hex.DecodeString("1002")
	if err := Unmarshal(b, &r); err == nil {
		t.Error("response without conversation_id accepted")
	} else if de := err.(*DecodeError); de.Field != "conversation_id" {
		t.Errorf("missing conversation_id: %v", err)
	}
	if !IsWriteMethod(MethodRecordConversation) {
		t.Error("RecordConversation is a write (idempotency key, retry flag)")
	}
}
