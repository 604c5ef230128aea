from source_allo.run import main

if __name__ == "__main__":
    main()
