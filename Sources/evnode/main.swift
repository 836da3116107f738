print("evnode")
