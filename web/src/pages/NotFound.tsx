import { PageTitle } from "../components/ui";
import { Link } from "../router";

export function NotFound() {
  return (
    <section>
      <PageTitle>Page not found</PageTitle>
      <p>
        There is no page at this address. Go to the <Link to="/">start page</Link>.
      </p>
    </section>
  );
}
