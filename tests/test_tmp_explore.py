def test_x(client):
    for m in ("lexical","dense","hybrid"):
        print(m, [h["scores"] for h in client.post("/v1/search", json={"question":"南鳥島","mode":m}).json()["hits"]])
