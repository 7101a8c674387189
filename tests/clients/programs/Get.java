// GET a URL with one of the JDK's HTTP clients (`client`: java.net.http.HttpClient,
// `connection`: HttpURLConnection), proxies and trust store from system properties
// (JAVA_TOOL_OPTIONS), and print the body or the exception.
//
// usage: java Get client|connection URL
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Get {
    public static void main(String[] args) {
        URI url = URI.create(args[1]);
        try {
            if (args[0].equals("client")) {
                HttpResponse<String> response = HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(url).build(), HttpResponse.BodyHandlers.ofString());
                System.out.print(response.statusCode() + " " + response.body());
            } else {
                HttpURLConnection connection = (HttpURLConnection) url.toURL().openConnection();
                try (InputStream body = connection.getInputStream()) {
                    System.out.print(connection.getResponseCode() + " "
                        + new String(body.readAllBytes()));
                }
            }
        } catch (Exception e) {
            System.out.println(e);
            System.exit(1);
        }
    }
}
