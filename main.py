from source_allo.run import run

if __name__ == "__main__":
    run()
