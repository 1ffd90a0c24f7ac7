//! A filter that fetches something over HTTP for each document: the import
//! the sandbox must refuse, naming `wasi:http/outgoing-handler`.

wit_bindgen::generate!({
    path: ["../../../guest-sdk/wit", "wit"],
    world: "test:http-filter/http-filter",
    generate_all,
});


struct HttpFilter;

impl Guest for HttpFilter {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn filter(document: String) -> Result<Verdict, String> {
        wasi::http::outgoing_handler::handle(&document)?;
        Ok(Verdict::Keep)
    }
}

export!(HttpFilter);
