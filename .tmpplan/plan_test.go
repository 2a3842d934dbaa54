package tmpplan
import ("context";"path/filepath";"testing";"database/sql";"fmt";"time"
 "github.com/natter-chat/natter/pkg/store"; "github.com/natter-chat/natter/pkg/protocol")
func TestPlan(t *testing.T){
 p := filepath.Join(t.TempDir(),"db")
 ctx := context.Background()
 s, err := store.OpenSQLite(ctx, p); if err!=nil {t.Fatal(err)}
 var batch []protocol.Message
 for i := 1; i <= 50000; i++ { batch = append(batch, protocol.Message{ChatID:"c", Seq: uint64(i), MessageID: fmt.Sprintf("m%d",i), SenderID:"a", Content:"hello world", MessageType:"text", Timestamp: int64(i)})
   if len(batch) == 1000 { if err := s.AppendMessages(ctx, batch); err != nil {t.Fatal(err)}; batch = nil } }
 start := time.Now()
 for i := 0; i < 100; i++ {
   s.AppendMessages(ctx, []protocol.Message{{ChatID:"c", Seq: uint64(50001+i), MessageID: fmt.Sprintf("e%d",i), SenderID:"a", Content:"edited", MessageType:"edit", RefID: fmt.Sprintf("m%d", 100+i), Timestamp: 1}})
 }
 t.Log("100 edits:", time.Since(start))
 start = time.Now()
 for i := 0; i < 100; i++ {
   s.AppendMessages(ctx, []protocol.Message{{ChatID:"c", Seq: uint64(50101+i), MessageID: fmt.Sprintf("x%d",i), SenderID:"a", Content:"new", MessageType:"text", Timestamp: 1}})
 }
 t.Log("100 messages:", time.Since(start))
 s.Close()
 db,_ := sql.Open("sqlite", "file:"+p)
 for _, q := range []string{
  `EXPLAIN QUERY PLAN SELECT 1 FROM messages d WHERE d.chat_id = ?1 AND d.ref_id = ?2 AND d.message_type = 'delete'`,
  `EXPLAIN QUERY PLAN UPDATE messages SET state_seq = MAX(state_seq, ?1) WHERE chat_id = ?1 AND message_id = ?2`,
 }{
  rows, err := db.Query(q, "c", "r"); if err != nil {t.Fatal(err)}
  for rows.Next(){ var a,b,c int; var d string; rows.Scan(&a,&b,&c,&d); t.Log(d) }
  rows.Close(); t.Log("--")
 }
}
